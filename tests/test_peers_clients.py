"""The peers benchmark's load generators (bench/peers: the asyncio client and wrk's load.lua) against a real
uvicorn on the committed models, in each request form they send the servers (a multipart upload, the Open
Inference Protocol's binary-data extension, its base64 JSON), which DeepServe all takes: every answer is read and
checked, and a wrong one is counted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from bench.peers.bodies import multipart, oip_base64, oip_binary, write_bodies
from bench.peers.run import asyncio_client, check_answers, wrk
from tests.support.digit_images import KINDS, render
from tests.support.paths import COMMITTED_MODELS
from tests.support.service import uvicorn_client

pytestmark = pytest.mark.slow
FORMS = [("/predict/digit", multipart), ("/v2/models/digit/infer", partial(oip_binary, shape=(1,))),
         ("/v2/models/digit/infer", oip_base64)]  # fmt: skip


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with uvicorn_client(Settings(models_dir=COMMITTED_MODELS)) as client:
        yield client


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    for digit, kind in zip(range(10), KINDS, strict=False):
        (folder / f"{digit}_0.png").write_bytes(render(digit, kind, seed=digit))
    return folder


def mislabel(manifest: Path) -> None:
    """Every line's label one digit off: each answer is then wrong."""
    lines = [line.split("\t", 1) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(f"{(int(label) + 1) % 10}\t{rest}\n" for label, rest in lines))


@pytest.mark.parametrize(("path", "encode"), FORMS, ids=["multipart", "oip-binary", "oip-base64"])
def test_the_asyncio_client_checks_every_answer(http, digits, tmp_path, path, encode) -> None:
    manifest, bodies = write_bodies(digits, tmp_path, encode=encode)
    port = http.base_url.port
    assert check_answers(port, bodies, path) == len(bodies) == 10
    url = f"http://127.0.0.1:{port}{path}"
    result = asyncio_client(url, 4, 1, manifest)
    assert result["requests"] > 0 and result["checked"] == result["requests"] and result["wrong"] == 0
    assert sum(result[k] for k in ("connect_errors", "read_errors", "status_errors", "timeouts")) == 0
    assert result["client_cpu_seconds"] > 0 and result["p50_ms"] <= result["p99_ms"]
    mislabel(manifest)
    result = asyncio_client(url, 4, 1, manifest)
    assert result["checked"] > 0 and result["wrong"] == result["checked"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="Debian's wrk is not installed")
@pytest.mark.parametrize(("path", "encode"), FORMS, ids=["multipart", "oip-binary", "oip-base64"])
def test_wrk_with_load_lua_checks_every_answer(http, digits, tmp_path, path, encode) -> None:
    manifest, _ = write_bodies(digits, tmp_path, encode=encode)
    url = f"http://127.0.0.1:{http.base_url.port}{path}"
    result = wrk(url, 2, 1, manifest)
    assert result["requests"] > 0 and result["checked"] > 0 and result["wrong"] == 0 and result["status_errors"] == 0
    mislabel(manifest)
    result = wrk(url, 2, 1, manifest)
    assert result["checked"] > 0 and result["wrong"] == result["checked"]
