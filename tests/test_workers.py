"""`deepserve serve --workers 2`: what a user sees is one service, whichever process answers. Every request here
goes on a new connection, so the requests spread over both processes."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.manifest import read_manifest, save_entry
from app.reloads import LOG_FILE
from tests.support.paths import COMMITTED_MODELS
from tests.support.service import cli_client

AGREE_SECONDS = 2.0  # every answer for this long (hundreds, on new connections) comes from both processes


def served_versions(client: httpx.Client, wanted: str, timeout: float = 30.0) -> set[str]:
    """GET /models/digit until no answer for AGREE_SECONDS was other than `wanted`: the versions answered then, or
    at the first other answer after `timeout`, those and it. (A run of answers from one process alone is possible
    while the other is busy for a moment, never for seconds.)"""
    deadline = time.monotonic() + timeout
    since, answered = time.monotonic(), set()
    while time.monotonic() - since < AGREE_SECONDS:
        version = client.get("/models/digit").json()["version"]
        if version != wanted:
            if time.monotonic() > deadline:
                return answered | {version}
            since, answered = time.monotonic(), set()
            continue
        answered.add(version)
    return answered


@pytest.fixture
def digit_models(tmp_path: Path) -> Path:
    """The committed digit model, as version 1 (promoted) and a copy of it as version 9."""
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "digit", models / "digit")
    served = read_manifest(models).served()["digit"]
    shutil.copytree(models / served.path, models / "digit" / "9")
    save_entry(models, served.model_copy(update={"version": "9", "path": "digit/9"}))
    return models


@pytest.mark.slow
def test_a_reload_reaches_every_worker(digit_models: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with cli_client(digit_models, 2, {"DEEPSERVE_DATA_DIR": str(data), "DEEPSERVE_MODELS": "digit"}) as client:
        assert served_versions(client, "1") == {"1"}
        reloaded = client.post("/admin/models/digit/reload?version=9")  # one process gets it
        assert reloaded.status_code == 200 and reloaded.json()["version"] == "9"
        assert served_versions(client, "9") == {"9"}
        assert client.post("/admin/models/digit/reload").json()["version"] == "1"  # back to the promoted one
        assert served_versions(client, "1") == {"1"}
    assert len((data / LOG_FILE).read_text().splitlines()) == 2  # the two reloads, each applied where it arrived


def test_metrics_count_the_requests_of_every_worker(tmp_path: Path) -> None:
    env = {"DEEPSERVE_DATA_DIR": str(tmp_path / "data"), "DEEPSERVE_MODELS": "digit"}
    with cli_client(COMMITTED_MODELS, 2, env) as client:
        for _ in range(200):
            assert client.get("/health/live").status_code == 200
        text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    live = ("deepserve_requests_total", (("method", "GET"), ("route", "/health/live"), ("status", "200")))
    assert samples[live] == 200
    assert samples[("deepserve_model_ready", (("model", "digit"),))] == 1
