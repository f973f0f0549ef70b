"""POST /predict/anomaly on a real autoencoder trained in the session, in-process and behind uvicorn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.families.anomaly.scoring import alarm_regions
from tests.support.nab_like import synthetic_series
from tests.support.paths import COMMITTED_MODELS, SHARED_DATA
from tests.support.service import assert_error, serve

NAB = SHARED_DATA / "nab"


@pytest.fixture(scope="module", params=["asgi", "uvicorn"])
def client(request: pytest.FixtureRequest, anomaly_models: Path):
    with serve(request.param, Settings(models_dir=anomaly_models)) as c:
        yield c


def series() -> tuple[list[str], list[float]]:
    timestamps, values = synthetic_series()
    return [str(t) for t in timestamps], [float(v) for v in values]


def test_scores_every_point(client) -> None:
    timestamps, values = series()
    payload = {"values": values, "timestamps": timestamps, "method": "autoencoder"}
    response = client.post("/predict/anomaly", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "anomaly", "version": "1"} and body["window"] == 48
    assert len(body["scores"]) == len(body["is_anomaly"]) == len(values)
    scores, flags = np.array(body["scores"]), np.array(body["is_anomaly"])
    np.testing.assert_array_equal(flags, scores > body["threshold"])
    assert [(r["start"], r["end"]) for r in body["regions"]] == alarm_regions(flags)
    for region in body["regions"]:
        assert region["start_time"].startswith(timestamps[region["start"]][:16])


def test_timestamps_are_optional(client) -> None:
    _, values = series()
    body = client.post("/predict/anomaly", json={"values": values[:100], "method": "autoencoder"}).json()
    assert len(body["scores"]) == 100 and all(r["start_time"] is None for r in body["regions"])


def test_the_model_is_listed_with_its_window(client) -> None:
    info = client.get("/models/anomaly").json()
    assert info["state"] == "ready" and info["input"]["window"] == 48


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_inf_is_422(client, bad: str) -> None:
    body = '{"values": [' + ", ".join(["1.0"] * 60 + [bad]) + "]}"
    response = client.post("/predict/anomaly", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_input")


def test_the_autoencoder_refuses_missing_values_with_their_index(client) -> None:
    values: list[float | None] = [1.0] * 60
    values[7] = None
    response = client.post("/predict/anomaly", json={"values": values, "method": "autoencoder"})
    assert assert_error(response, 422, "invalid_input")["detail"] == {"index": 7}


def test_series_shorter_than_a_window_is_422(client) -> None:
    response = client.post("/predict/anomaly", json={"values": [1.0] * 47, "method": "autoencoder"})
    assert_error(response, 422, "invalid_input")
    assert response.json()["error"]["detail"] == {"window": 48, "length": 47}


@pytest.mark.parametrize(
    "payload",
    [
        {"values": [1.0] * 60, "timestamps": ["2014-07-01T00:00:00"] * 59},  # mismatched lengths
        {"values": [1.0] * 60, "timestamps": ["yesterday"] * 60},
        {"values": ["a"] * 60},
        {"values": [1.0] * 20_001},
        {},
    ],
)
def test_invalid_requests_are_422(client, payload: dict) -> None:
    assert_error(client.post("/predict/anomaly", json=payload), 422, "invalid_input")


def test_invalid_json_is_400_malformed_body(client) -> None:
    response = client.post("/predict/anomaly", content=b"{values: ", headers={"content-type": "application/json"})
    assert_error(response, 400, "malformed_body")


def test_not_installed_is_503(tmp_path: Path) -> None:
    with serve("asgi", Settings(models_dir=tmp_path)) as c:
        response = c.post("/predict/anomaly", json={"values": [1.0] * 400, "method": "autoencoder"})
        assert_error(response, 503, "model_not_installed")
        assert "training.train_anomaly" in response.json()["error"]["message"]


@pytest.mark.real_data
@pytest.mark.skipif(not (NAB / "labels").exists(), reason="../shared/data/nab is absent")
def test_committed_model_finds_the_nyc_taxi_anomalies_through_http() -> None:
    from training.common.nab_data import load_nab_series, load_nab_windows
    from training.train_anomaly import evaluate

    timestamps, values = load_nab_series(NAB)
    windows = load_nab_windows(NAB)
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS, models=["anomaly"])) as c:
        response = c.post("/predict/anomaly", json={"values": values.tolist(), "method": "autoencoder"})
    flags = np.array(response.json()["is_anomaly"])
    result = evaluate(flags, timestamps, windows)
    committed = json.loads((COMMITTED_MODELS / "anomaly" / "1" / "metrics.json").read_text())
    print(
        f"\nnyc_taxi through HTTP: {result['windows_detected']}/5 windows, {result['false_alarm_regions']} false alarms"
    )
    assert result["windows_detected"] >= 4 and result["false_alarm_regions"] <= 3
    assert result["windows_detected"] == committed["windows_detected"]
