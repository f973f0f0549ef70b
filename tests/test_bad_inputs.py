"""The bad-input matrix: every hostile request in tests/hostile_inputs.py against a real uvicorn serving every
family (digit, image, lstm, anomaly), each answered with its status, a documented error type in the one body,
nothing internal leaked, and within the client's 10 s timeout (a hang fails the test)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.errors import ERROR_TABLE
from tests.support.hostile_inputs import Case, all_cases
from tests.support.service import assert_error, serve

CASES = all_cases()
# What a body must never show a client: memory addresses, file paths, tracebacks, library internals.
LEAKS = re.compile(r"0x[0-9a-f]{6,}|Traceback|site-packages|/tmp/|/work/|/home/|/usr/|\.py\b|Errno", re.I)


@pytest.fixture(scope="module")
def server(all_models_dir: Path):
    with serve("uvicorn", Settings(models_dir=all_models_dir)) as client:
        yield client


def test_matrix_is_large_and_covers_every_endpoint() -> None:
    assert len(CASES) >= 60 and len({c.id + c.path for c in CASES}) == len(CASES)
    for path in ("/predict/digit", "/predict/image", "/predict/sentiment", "/predict/anomaly"):
        assert sum(c.path == path for c in CASES) >= 15, path


@pytest.mark.parametrize("case", CASES, ids=[f"{c.path.rsplit('/', 1)[-1]}-{c.id}" for c in CASES])
def test_hostile_request(server: httpx.Client, case: Case) -> None:
    response = server.request(case.method, case.path, timeout=10, **case.kwargs)
    allowed = case.status if isinstance(case.status, set) else {case.status}
    assert response.status_code in allowed, response.text[:500]
    assert not LEAKS.search(response.text), response.text[:500]
    if response.status_code >= 400:
        type_ = response.json()["error"]["type"]
        assert type_ in ERROR_TABLE and ERROR_TABLE[type_].status == response.status_code
        assert_error(response, response.status_code, case.type or type_)
    if response.status_code == 405:
        assert case.method not in response.headers["allow"] and response.headers["allow"]
    assert server.get("/health/live").status_code == 200  # the server (and this connection pool) still answers
