"""`deepserve serve --workers 2`: what a user sees is one service, whichever process answers. Every request here
goes on a new connection, so the requests spread over both processes."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.paths import COMMITTED_MODELS
from tests.support.service import cli_client


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
