"""POST /predict/anomaly's default method (nearest_context, any series) and the /anomaly/streams routes."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.families.anomaly.detector import DEFAULT
from tests.support.paths import COMMITTED_MODELS, SHARED_DATA
from tests.support.seasonal import EVENTS, seasonal
from tests.support.service import assert_error, serve

NAB = SHARED_DATA / "nab"
START = np.datetime64("2024-01-01T00:00:00")
DETECTOR = {"models_dir": COMMITTED_MODELS, "models": ["nearest_context"]}  # the default method's settings only


def times(n: int, step_minutes: int = 15, start: np.datetime64 = START) -> list[str]:
    return [str(start + i * np.timedelta64(step_minutes, "m")) for i in range(n)]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    with serve("asgi", Settings(**DETECTOR, data_dir=data, max_streams=3)) as c:
        yield c


def test_any_scale_series_gets_per_point_answers_and_regions(client) -> None:
    values = seasonal(scale=5e5, offset=1e6)
    response = client.post("/predict/anomaly", json={"values": values.tolist(), "timestamps": times(len(values))})
    assert response.status_code == 200, response.text
    body = response.json()
    n = len(values)
    for key in ("status", "scores", "is_anomaly", "expected", "lower", "upper", "direction"):
        assert len(body[key]) == n, key
    assert body["status"][: DEFAULT.warmup] == ["warming_up"] * DEFAULT.warmup
    assert set(body["status"][DEFAULT.warmup :]) == {"scored"} and None not in body["scores"]
    alarms = np.flatnonzero(body["is_anomaly"]).tolist()
    assert alarms[:2] == [EVENTS["spike"], EVENTS["dip"]] and len(alarms) == 3
    assert body["direction"][EVENTS["spike"]] == "spike" and body["direction"][EVENTS["dip"]] == "dip"
    assert [r["start"] for r in body["regions"]] == alarms
    assert body["regions"][0]["start_time"].startswith(times(n)[EVENTS["spike"]][:16])
    assert body["sampling"] == {
        "step_seconds": 900.0,
        "regular": True,
        "gaps": [],
        "gap_count": 0,
        "duplicates": [],
        "duplicate_count": 0,
    }
    assert body["missing"] == {"count": 0, "indices": []}
    assert body["method"] == "nearest_context" and body["mode"] == "causal" and body["threshold"] == DEFAULT.threshold


def test_non_causal_mode_scores_the_warm_up_too(client) -> None:
    values = seasonal()[:600].tolist()
    body = client.post("/predict/anomaly", json={"values": values, "mode": "non_causal"}).json()
    assert body["mode"] == "non_causal" and set(body["status"]) == {"scored"}
    assert all(s > 0 for s in body["scores"])


def test_gaps_and_irregular_spacing_are_reported(client) -> None:
    values = seasonal()[:400].tolist()
    stamps = times(400)
    stamps[300:] = times(100, start=START + np.timedelta64(300 * 15 + 60 * 6, "m"))  # six hours missing
    body = client.post("/predict/anomaly", json={"values": values, "timestamps": stamps}).json()
    assert body["sampling"]["regular"] is False and body["sampling"]["gap_count"] == 1
    assert body["sampling"]["gaps"][0]["after"] == 299 and body["sampling"]["gaps"][0]["missing_points"] == 24


def test_repeated_timestamps_are_scored_in_order_and_reported(client) -> None:
    """A clock put back (NAB's ec2 series hold 12 points stamped 2014-03-09T03:00:00, a daylight-saving change)."""
    values = seasonal()[:600].tolist()
    stamps = times(600)
    stamps[301:312] = [stamps[300]] * 11  # points 301-311 repeat point 300's time
    stamps[500] = stamps[499]
    body = client.post("/predict/anomaly", json={"values": values, "timestamps": stamps}).json()
    sampling = body["sampling"]
    assert sampling["duplicate_count"] == 12 and [d["index"] for d in sampling["duplicates"]] == [*range(301, 312), 500]
    assert sampling["duplicates"][0]["time"] == stamps[300] and sampling["regular"] is False
    assert sampling["step_seconds"] == 900.0
    plain = client.post("/predict/anomaly", json={"values": values}).json()
    assert body["is_anomaly"] == plain["is_anomaly"] and body["scores"] == plain["scores"]


@pytest.mark.parametrize("where", [1, 250, 399])
def test_a_timestamp_going_backwards_is_422_with_its_index(client, where: int) -> None:
    stamps = times(400)
    stamps[where] = str(np.datetime64(stamps[where - 1]) - np.timedelta64(1, "s"))
    response = client.post("/predict/anomaly", json={"values": [1.0] * 400, "timestamps": stamps})
    error = assert_error(response, 422, "invalid_input")
    assert error["detail"] == {"index": where} and "backwards" in error["message"]


@pytest.mark.parametrize(
    "stamps",
    [
        ["9999-12-31T23:59:59"] * 400,  # one time repeated: no step at all
        ["0001-01-01T00:00:00"] * 2 + times(398),
        times(398) + ["9999-12-31T23:59:59+14:00"] * 2,
        ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", *["9999-12-31T23:59:59-14:00"] * 398],
    ],
)
def test_repeated_timestamps_at_the_edges_of_the_calendar_are_answered(client, stamps: list[str]) -> None:
    response = client.post("/predict/anomaly", json={"values": seasonal()[:400].tolist(), "timestamps": stamps})
    assert response.status_code == 200, response.text
    assert response.json()["sampling"]["duplicate_count"] >= 1


def test_missing_values_are_skipped_scored_as_missing_and_reported(client) -> None:
    values = seasonal()
    gaps = [5, 160, 161, 162, EVENTS["spike"] - 1, 1500]
    sent: list[float | None] = values.tolist()
    for i in gaps:
        sent[i] = None
    body = client.post("/predict/anomaly", json={"values": sent, "timestamps": times(len(values))}).json()
    assert body["missing"] == {"count": len(gaps), "indices": gaps}
    assert [body["status"][i] for i in gaps] == ["missing"] * len(gaps)
    assert all(body[k][i] is None for k in ("expected", "lower", "upper") for i in gaps)
    assert not any(body["is_anomaly"][i] for i in gaps) and all(body["scores"][i] == 0.0 for i in gaps)
    # The other points are scored exactly as the series without the missing values.
    kept = [i for i in range(len(values)) if i not in gaps]
    alone = client.post("/predict/anomaly", json={"values": values[kept].tolist()}).json()
    assert [body["scores"][i] for i in kept] == alone["scores"]
    assert [body["is_anomaly"][i] for i in kept] == alone["is_anomaly"]
    assert body["is_anomaly"][EVENTS["spike"]]


def test_a_series_mostly_missing_is_422(client) -> None:
    needed = DEFAULT.warmup + 1
    sent = [1.0] * needed + [None] * 50
    sent[3] = None
    error = assert_error(client.post("/predict/anomaly", json={"values": sent}), 422, "invalid_input")
    assert error["detail"] == {"min_length": needed, "length": needed + 50, "missing": 51}
    assert client.post("/predict/anomaly", json={"values": [None] * 400}).status_code == 422


@pytest.mark.parametrize(("mode", "needed"), [("causal", DEFAULT.warmup + 1), ("non_causal", 2 * DEFAULT.warmup)])
def test_series_shorter_than_needed_is_422(client, mode: str, needed: int) -> None:
    response = client.post("/predict/anomaly", json={"values": [1.0] * (needed - 1), "mode": mode})
    error = assert_error(response, 422, "invalid_input")
    assert error["detail"] == {"min_length": needed, "length": needed - 1}
    assert client.post("/predict/anomaly", json={"values": [1.0] * needed, "mode": mode}).status_code == 200


@pytest.mark.parametrize("payload", [{"sensitivity": 1.5}, {"mode": "future"}, {"method": "magic"}])
def test_bad_options_are_422(client, payload: dict) -> None:
    assert_error(client.post("/predict/anomaly", json={"values": [1.0] * 400, **payload}), 422, "invalid_input")


def test_huge_values_are_422_not_null_scores(client) -> None:
    response = client.post("/predict/anomaly", json={"values": [1.0] * 399 + [1e300]})
    assert_error(response, 422, "invalid_input")
    body = client.post("/predict/anomaly", json={"values": [1.0] * 399 + [1e29]}).json()
    assert all(np.isfinite(body["scores"])) and body["is_anomaly"][-1] is True


def test_stream_answers_warming_up_then_scores_and_matches_the_batch_answer(client) -> None:
    values = seasonal()
    batch = client.post("/predict/anomaly", json={"values": values.tolist()}).json()
    cut = DEFAULT.warmup - 10
    first = client.post("/anomaly/streams/checkout/points", json={"values": values[:cut].tolist()}).json()
    assert first["stream"]["status"] == "warming_up" and set(first["status"]) == {"warming_up"}
    rest = client.post("/anomaly/streams/checkout/points", json={"values": values[cut:].tolist()}).json()
    assert (
        rest["first_index"] == cut and rest["stream"]["status"] == "ready" and rest["stream"]["points"] == len(values)
    )
    assert first["is_anomaly"] + rest["is_anomaly"] == batch["is_anomaly"]
    np.testing.assert_allclose(first["scores"] + rest["scores"], batch["scores"], rtol=1e-9)
    assert [r["start"] for r in rest["regions"]] == [r["start"] for r in batch["regions"]]
    listed = client.get("/anomaly/streams").json()["streams"]
    assert [s["series_id"] for s in listed] == ["checkout"] and listed[0]["points"] == len(values)
    assert client.delete("/anomaly/streams/checkout").status_code == 204
    assert_error(client.get("/anomaly/streams/checkout"), 404, "stream_not_found")
    assert_error(client.delete("/anomaly/streams/checkout"), 404, "stream_not_found")


def test_stream_limits_are_429_and_413(client) -> None:
    for i in range(3):
        assert client.post(f"/anomaly/streams/s{i}/points", json={"values": [1.0]}).status_code == 200
    assert_error(client.post("/anomaly/streams/s9/points", json={"values": [1.0]}), 429, "too_many_streams")
    assert client.post("/anomaly/streams/s0/points", json={"values": [2.0]}).status_code == 200  # existing: fine
    error = assert_error(
        client.post("/anomaly/streams/s0/points", json={"values": [1.0] * 10_001}), 413, "payload_too_large"
    )
    assert error["detail"] == {"max_points": 10_000, "points": 10_001}
    for i in range(3):
        client.delete(f"/anomaly/streams/s{i}")


def test_stream_bad_input(client) -> None:
    assert_error(client.post("/anomaly/streams/bad%20id/points", json={"values": [1.0]}), 422, "invalid_input")
    assert_error(client.post("/anomaly/streams/x/points", json={"values": []}), 422, "invalid_input")
    stamps = times(3)
    ok = client.post("/anomaly/streams/x/points", json={"values": [1.0, 2.0, 3.0], "timestamps": stamps})
    assert ok.status_code == 200
    earlier = client.post("/anomaly/streams/x/points", json={"values": [1.0], "timestamps": stamps[1:2]})
    error = assert_error(earlier, 422, "invalid_input")
    assert error["detail"] == {"index": 3, "last_time": stamps[-1] + "+00:00"}
    client.delete("/anomaly/streams/x")


def test_stream_takes_repeated_timestamps_and_missing_values_as_the_batch_does(client) -> None:
    values = seasonal()[:1200]
    sent: list[float | None] = values.tolist()
    for i in (10, 400, 401, 900):
        sent[i] = None
    stamps = times(1200)
    stamps[600:604] = [stamps[599]] * 4  # the first request's last time, repeated at the start of the second
    batch = client.post("/predict/anomaly", json={"values": sent, "timestamps": stamps}).json()
    first = client.post("/anomaly/streams/dst/points", json={"values": sent[:600], "timestamps": stamps[:600]})
    rest = client.post("/anomaly/streams/dst/points", json={"values": sent[600:], "timestamps": stamps[600:]})
    assert first.status_code == rest.status_code == 200, rest.text
    first_body, rest_body = first.json(), rest.json()
    assert first_body["missing"] == {"count": 3, "indices": [10, 400, 401]}
    assert rest_body["missing"] == {"count": 1, "indices": [900]}
    assert [d["index"] for d in rest_body["sampling"]["duplicates"]] == [600, 601, 602, 603]
    assert rest_body["first_index"] == 600 and rest_body["stream"]["points"] == 1200
    assert first_body["is_anomaly"] + rest_body["is_anomaly"] == batch["is_anomaly"]
    assert first_body["status"] + rest_body["status"] == batch["status"]
    client.delete("/anomaly/streams/dst")


@pytest.mark.slow
def test_streams_survive_a_real_restart(tmp_path: Path) -> None:
    values = seasonal()
    settings = Settings(**DETECTOR, data_dir=tmp_path / "data")
    with serve("uvicorn", settings) as c:
        before = c.post("/anomaly/streams/web/points", json={"values": values[:1000].tolist()})
        assert before.status_code == 200
    with serve("uvicorn", settings) as c:
        assert c.get("/anomaly/streams/web").json()["points"] == 1000
        after = c.post("/anomaly/streams/web/points", json={"values": values[1000:1300].tolist()}).json()
    whole = serve_batch(values[:1300])
    assert after["is_anomaly"] == whole["is_anomaly"][1000:] and any(after["is_anomaly"])


def serve_batch(values: np.ndarray) -> dict:
    with serve("asgi", Settings(**DETECTOR)) as c:
        return c.post("/predict/anomaly", json={"values": values.tolist()}).json()


@pytest.mark.real_data
@pytest.mark.skipif(not (NAB / "labels").exists(), reason="../shared/data/nab is absent")
def test_default_method_finds_the_nyc_taxi_anomalies_through_http() -> None:
    from training.common.nab_data import load_nab_series, load_nab_windows
    from training.train_anomaly import evaluate

    timestamps, values = load_nab_series(NAB)
    windows = load_nab_windows(NAB)
    with serve("asgi", Settings(**DETECTOR)) as c:
        response = c.post("/predict/anomaly", json={"values": values.tolist()})
    flags = np.array(response.json()["is_anomaly"])
    result = evaluate(flags, timestamps, windows)
    print(f"\nnyc_taxi, nearest_context: {result['windows_detected']}/5 windows, {result['false_alarm_regions']} false")
    assert result["windows_detected"] == 5 and result["false_alarm_regions"] <= 3


def test_the_detector_is_a_listed_model_with_its_settings_and_nab_score(client) -> None:
    info = client.get("/models/nearest_context").json()
    assert info["state"] == "ready" and info["task"] == "anomaly-detection/timeseries"
    assert info["input"]["detector"] == asdict(DEFAULT) and "nab_standard" in info["metrics"]
    body = client.post("/predict/anomaly", json={"values": seasonal()[:400].tolist()}).json()
    assert body["model"] == {"name": "nearest_context", "version": info["version"]}


def test_a_version_of_the_detector_can_be_pinned(tmp_path: Path) -> None:
    """X-Model-Version serves another version's settings: here one whose threshold is 4x the served one's."""
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "nearest_context", models / "nearest_context")
    (models / "nearest_context" / "promoted.json").unlink(missing_ok=True)
    served = max(int(v.name) for v in (models / "nearest_context").iterdir() if v.name.isdigit())
    strict = models / "nearest_context" / "0"
    shutil.copytree(models / "nearest_context" / str(served), strict)
    entry = json.loads((strict / "model.json").read_text())
    (strict / "model.json").write_text(json.dumps({**entry, "version": "0", "path": "nearest_context/0"}))
    settings = json.loads((strict / "detector.json").read_text())  # the newest version's, served without a pointer
    (strict / "detector.json").write_text(json.dumps({**settings, "threshold": 4 * settings["threshold"]}))
    values = {"values": seasonal().tolist()}
    with serve("asgi", Settings(models_dir=models)) as c:
        default = c.post("/predict/anomaly", json=values).json()
        pinned = c.post("/predict/anomaly", json=values, headers={"X-Model-Version": "0"}).json()
    assert default["model"]["version"] == str(served) and pinned["model"]["version"] == "0"
    assert pinned["threshold"] == 4 * default["threshold"] and pinned["scores"] == default["scores"]


def test_the_served_detector_reports_an_event_inside_version_2s_warm_up() -> None:
    """models/nearest_context/5 (served: warm-up 100, limits x2 at its end falling to x1 at point 300) scores a
    series from point 100 and reports a spike at point 120, which v2 (warm-up 150) is still learning; neither alarms
    on the same series without it, and a series of 101 values is scored by v5 and too short for v2."""
    clean = seasonal(events=False)[:600]
    spiked = clean.copy()
    spiked[120] += 0.5  # about four times the series' usual step
    with serve("asgi", Settings(**DETECTOR, pinned_load_interval_seconds=0)) as c:

        def alarms(values, version: str) -> list[int]:
            body = c.post("/predict/anomaly", json={"values": values.tolist()}, headers={"X-Model-Version": version})
            return [i for i, a in enumerate(body.json()["is_anomaly"]) if a]

        found = {v: (alarms(clean, v), alarms(spiked, v)) for v in "256"}
        short = {
            v: c.post("/predict/anomaly", json={"values": clean[:101].tolist()}, headers={"X-Model-Version": v})
            for v in "25"
        }
    assert found == {"2": ([], []), "5": ([], [120]), "6": ([], [120])}  # v6: v5 with v4's refractory period
    assert short["5"].status_code == 200 and short["5"].json()["status"][100] == "scored"
    assert assert_error(short["2"], 422, "invalid_input")["detail"]["min_length"] == 151


def test_version_4_reports_an_event_40_points_after_another_that_version_2_hides() -> None:
    """models/nearest_context/4 and 6 (refractory 20, candidates) alarm on a second spike 40 points after a first; v2
    and v5 (refractory 100, v5 served) report only the first. All pinned, whichever is served."""
    values = seasonal(events=False)
    first = 12 * 96
    values[first] += 2.5
    values[first + 40] += 4.0  # past the first's peak: a new extreme, whatever the record
    body = {"values": values.tolist()}
    with serve("asgi", Settings(**DETECTOR, pinned_load_interval_seconds=0)) as c:
        answers = {v: c.post("/predict/anomaly", json=body, headers={"X-Model-Version": v}).json() for v in "2456"}
    assert {v: r["model"]["version"] for v, r in answers.items()} == {v: v for v in "2456"}
    alarms = {v: [i for i, a in enumerate(r["is_anomaly"]) if a] for v, r in answers.items()}
    assert alarms == {"2": [first], "4": [first, first + 40], "5": [first], "6": [first, first + 40]}, alarms


@pytest.mark.parametrize(
    ("last", "nxt", "status"),
    [
        ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59-14:00", 200),  # repeated, past year 9999 in UTC
        ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:58-14:00", 422),  # a step back from there
        ("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+14:00", 200),  # repeated, before year 1 in UTC
    ],
)
def test_a_stream_at_the_edges_of_the_calendar_answers(client, last: str, nxt: str, status: int) -> None:
    first = client.post("/anomaly/streams/edge/points", json={"values": [1.0, None], "timestamps": [last, last]})
    assert first.status_code == 200, first.text
    assert first.json()["sampling"]["duplicate_count"] == 1 and first.json()["missing"]["indices"] == [1]
    response = client.post("/anomaly/streams/edge/points", json={"values": [2.0], "timestamps": [nxt]})
    assert response.status_code == status, response.text
    if status == 422:
        assert assert_error(response, 422, "invalid_input")["detail"]["index"] == 2
    else:
        assert [d["index"] for d in response.json()["sampling"]["duplicates"]] == [2]
    client.delete("/anomaly/streams/edge")


def test_non_causal_mode_scores_around_missing_values(client) -> None:
    sent: list[float | None] = seasonal()[:800].tolist()
    for i in (0, 5, 400, 799):
        sent[i] = None
    body = client.post("/predict/anomaly", json={"values": sent, "mode": "non_causal"}).json()
    assert [body["status"][i] for i in (0, 5, 6, 400, 799)] == ["missing", "missing", "scored", "missing", "missing"]
    assert "warming_up" not in body["status"] and body["missing"]["count"] == 4


def test_a_stream_of_missing_values_only_is_answered_and_goes_on(tmp_path: Path) -> None:
    """Nulls only (a sensor down), then values: the stream counts every point sent and scores from the present ones."""
    with serve("asgi", Settings(**DETECTOR, data_dir=tmp_path)) as c:
        empty = c.post("/anomaly/streams/down/points", json={"values": [None] * 5})
        assert empty.status_code == 200, empty.text
        assert empty.json()["status"] == ["missing"] * 5 and empty.json()["stream"]["points"] == 5
        later = c.post("/anomaly/streams/down/points", json={"values": seasonal()[:400].tolist()}).json()
        assert later["first_index"] == 5 and later["status"][DEFAULT.warmup] == "scored"
        assert later["is_anomaly"] == serve_batch(seasonal()[:400])["is_anomaly"]
