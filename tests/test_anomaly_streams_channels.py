"""Streams of several channels (POST /anomaly/streams/{id}/points with rows): fed in parts, even a row at a time,
a stream gives the rows the answers POST /predict/anomaly gives the whole series (the same alarm rows, kinds and
channels); its first points fix its channels; it counts as many streams as it has channels."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.core.registry import ModelRegistry
from app.families.anomaly import multivariate, multivariate_stream
from app.families.anomaly.context_runtime import NearestContextRuntime
from app.families.anomaly.detector import DEFAULT, DetectorState
from app.families.anomaly.schemas import StreamPointsRequest
from app.families.anomaly.stream_runtime import StreamAppend, StreamRuntime, state_bytes
from app.families.anomaly.streams import StreamStore
from tests.support.paths import COMMITTED_MODELS
from tests.support.service import assert_error, serve
from tests.test_anomaly_multivariate import NAMES, ROWS, SPIKE, decoupled, three_channels

JOIN = multivariate.JOIN


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(
        models_dir=COMMITTED_MODELS,
        models=["nearest_context"],
        data_dir=tmp_path_factory.mktemp("d"),
        max_streams=8,
        max_stream_points=2000,
    )
    with serve("asgi", settings) as c:
        yield c


def two_spikes() -> np.ndarray:
    """Channel mem jumps at row 250, then less at SPIKE: two events, the second's scores its own."""
    table = three_channels()
    table[250, 1] += 6 * 300
    return table


def stamps(rows: int) -> list[str]:
    return [str(np.datetime64("2024-01-01T00:00") + i * np.timedelta64(15, "m")) + ":00" for i in range(rows)]


def feed(client, series_id: str, rows: list, parts: list[int], **body) -> list[dict]:
    """`rows` sent to a new stream in parts of these sizes (cycled), with the `timestamps` in `body` cut alike."""
    answers, at, k = [], 0, 0
    while at < len(rows):
        n = parts[k % len(parts)]
        part = {key: value[at : at + n] if key == "timestamps" else value for key, value in body.items()}
        response = client.post(f"/anomaly/streams/{series_id}/points", json={"values": rows[at : at + n], **part})
        assert response.status_code == 200, response.text
        answers.append(response.json())
        at, k = at + n, k + 1
    assert client.delete(f"/anomaly/streams/{series_id}").status_code == 204
    return answers


def as_last_reported(answers: list[dict]) -> list[dict]:
    """Each alarm as the last answer that reported it gave it, in row order."""
    last = {alarm["index"]: alarm for answer in answers for alarm in answer["alarms"]}
    return [last[i] for i in sorted(last)]


@pytest.mark.parametrize(
    ("table", "names", "parts"),
    [
        (two_spikes(), NAMES, [7, 33, 150, 2, 64]),  # parts across the warm-up's end and across the events
        (decoupled(), ["a", "b"], [100, 1, 1, 250, 3]),  # a broken correlation alone
    ],
    ids=["channels", "correlation"],
)
def test_a_stream_fed_in_parts_gives_the_batch_answer(client, table: np.ndarray, names: list[str], parts) -> None:
    rows: list[list[float | None]] = table.tolist()
    rows[300][0], rows[301] = None, [None] * len(names)
    times = stamps(ROWS)
    batch = client.post("/predict/anomaly", json={"values": rows, "channels": names, "timestamps": times}).json()
    answers = feed(client, "parts", rows, parts, channels=names, timestamps=times)
    assert [a["first_index"] for a in answers] == np.cumsum([0] + [len(a["scores"]) for a in answers[:-1]]).tolist()
    joined = {key: sum((a[key] for a in answers), []) for key in ("status", "scores", "is_anomaly")}
    assert joined["is_anomaly"] == batch["is_anomaly"] and sum(batch["is_anomaly"]) >= 1
    assert joined["status"] == batch["status"]
    np.testing.assert_allclose(joined["scores"], batch["scores"], rtol=1e-9, atol=1e-12)
    streamed = as_last_reported(answers)
    assert [(a["index"], a["time"], a["kind"], a["channels"]) for a in streamed] == [
        (a["index"], a["time"], a["kind"], a["channels"]) for a in batch["alarms"]
    ]
    for mine, theirs in zip(streamed, batch["alarms"], strict=True):
        assert mine["scores"] == pytest.approx(theirs["scores"], rel=1e-9)
        assert mine["final"] == (mine["index"] + JOIN <= ROWS)
    assert answers[-1]["peers"] == batch["peers"] and answers[0]["peers"] == {}  # known once the warm-up is in
    for name in names:
        mine = sum((a["per_channel"][name]["is_anomaly"] for a in answers), [])
        assert mine == batch["per_channel"][name]["is_anomaly"]
        assert sum(a["missing"][name]["count"] for a in answers) == batch["missing"][name]["count"]


def test_an_alarm_is_reported_at_its_row_and_again_until_its_event_is_in(client) -> None:
    """The correlation break's alarm is raised at its row with the channels so far; the answer that brings the
    rest of its event's rows reports it again, final, as the batch answer names it."""
    table, names = decoupled(), ["a", "b"]
    batch = multivariate.score(table, names)
    [alarm] = [a for a in batch.alarms if SPIKE <= a.index < SPIKE + 150]
    rows = table.tolist()
    first = client.post("/anomaly/streams/break/points", json={"values": rows[: alarm.index + 1], "channels": names})
    body = first.json()
    [early] = body["alarms"]
    assert body["is_anomaly"][alarm.index] and early["index"] == alarm.index and not early["final"]
    assert early["kind"] == "correlation" and set(early["channels"]) <= set(alarm.scores)
    then = client.post("/anomaly/streams/break/points", json={"values": rows[alarm.index + 1 : alarm.index + 3]})
    assert [a["final"] for a in then.json()["alarms"]] == [False]  # 2 more rows: its event is not in yet
    rest = client.post("/anomaly/streams/break/points", json={"values": rows[alarm.index + 3 :]}).json()
    final = rest["alarms"][0]
    assert final["index"] == alarm.index and final["final"] and final["channels"] == list(alarm.scores)
    assert final["scores"] == pytest.approx(alarm.scores)
    assert client.delete("/anomaly/streams/break").status_code == 204


def test_row_by_row_through_saved_state_gives_the_batch_alarms() -> None:
    """One row at a time through the state as the store saves it (bytes), around the warm-up's end and the event;
    in parts elsewhere."""
    table, names = decoupled(seed=1), ["a", "b"]
    table[200, 1] = np.nan
    batch = multivariate.score(table, names)
    event = min(a.index for a in batch.alarms if SPIKE <= a.index < SPIKE + 150)
    warmup = multivariate.CHANNEL_WARMUP
    cuts = [*range(warmup - 5, warmup + 5), *range(event - 3, event + JOIN + 2), ROWS]
    state, at, outs = multivariate_stream.ChannelsState.new(2), 0, []
    for end in cuts:
        state = multivariate_stream.ChannelsState.from_bytes(state.to_bytes())
        outs.append(multivariate_stream.update(state, table[at:end], at, names, 0.5, DEFAULT))
        at = end
    assert np.concatenate([o.alarm for o in outs]).tolist() == batch.alarm.tolist()
    np.testing.assert_allclose(np.concatenate([o.score for o in outs]), batch.score, rtol=1e-9, atol=1e-12)
    last = {a.alarm.index: a for o in outs for a in o.alarms}
    streamed = [last[i].alarm for i in sorted(last)]
    assert [(a.index, a.kind, list(a.scores)) for a in streamed] == [
        (a.index, a.kind, list(a.scores)) for a in batch.alarms
    ]
    assert [a.scores for a in streamed] == [pytest.approx(a.scores, rel=1e-9) for a in batch.alarms]
    assert all(a.final for a in last.values())


def test_the_first_points_fix_the_channels(client) -> None:
    rows = three_channels()[:20].tolist()
    assert client.post("/anomaly/streams/hosts/points", json={"values": rows[:5], "channels": NAMES}).status_code == 200
    again = client.post("/anomaly/streams/hosts/points", json={"values": rows[5:10]})  # no names: the stream's
    assert again.status_code == 200 and again.json()["channels"] == NAMES and again.json()["first_index"] == 5
    refused = [
        ({"values": rows[10:12], "channels": ["cpu", "disk", "mem"]}, "has channels ['cpu', 'mem', 'disk']"),
        ({"values": [r[:2] for r in rows[10:12]]}, "has 3 channels ['cpu', 'mem', 'disk'] (fixed by its first"),
        ({"values": [r[0] for r in rows[10:12]]}, "these points are numbers: send rows of 3 values"),
    ]
    for body, says in refused:
        error = assert_error(client.post("/anomaly/streams/hosts/points", json=body), 422, "invalid_input")
        assert says in error["message"] and error["detail"]["channels"] == NAMES, error
    assert client.post("/anomaly/streams/flat/points", json={"values": [1.0, 2.0]}).status_code == 200
    error = assert_error(client.post("/anomaly/streams/flat/points", json={"values": rows[:2]}), 422, "invalid_input")
    assert "has one channel" in error["message"] and error["detail"]["channels"] is None
    for body, says in [
        ({"values": [[1.0, 2.0], [3.0]]}, "row 1 has 1 value"),
        ({"values": [[1.0, 2.0]], "channels": ["x", "x"]}, "channel names repeat"),
        ({"values": [1.0], "channels": ["x"]}, "send `values` as rows"),
    ]:
        error = assert_error(client.post("/anomaly/streams/new/points", json=body), 422, "invalid_input")
        assert says in str(error["detail"])
    # Refused points change nothing; listing, reading and deleting show the channels.
    assert client.get("/anomaly/streams/hosts").json() | {"created": 0, "updated": 0} == {
        "series_id": "hosts",
        "points": 10,
        "channels": NAMES,
        "status": "warming_up",
        "sensitivity": 0.5,
        "created": 0,
        "updated": 0,
    }
    listed = {s["series_id"]: s["channels"] for s in client.get("/anomaly/streams").json()["streams"]}
    assert listed == {"hosts": NAMES, "flat": None}
    for series_id in ("hosts", "flat"):
        assert client.delete(f"/anomaly/streams/{series_id}").status_code == 204
    assert_error(client.get("/anomaly/streams/hosts"), 404, "stream_not_found")


def test_a_stream_of_k_channels_counts_k_streams_and_its_values_count_against_the_points_limit(client) -> None:
    """The client's service keeps at most 8 streams and 2000 points a request."""
    six = [[1.0] * 6] * 3
    assert client.post("/anomaly/streams/six/points", json={"values": six}).status_code == 200
    assert client.post("/anomaly/streams/one/points", json={"values": [1.0]}).status_code == 200
    full = assert_error(
        client.post("/anomaly/streams/two/points", json={"values": [[1.0, 2.0]]}), 429, "too_many_streams"
    )
    assert "2 channels count as 2 streams" in full["message"] and full["detail"]["max_streams"] == 8
    assert client.post("/anomaly/streams/another/points", json={"values": [1.0]}).status_code == 200  # 8 of 8
    big = {"values": [[1.0] * 6] * 334}  # 2004 values
    error = assert_error(client.post("/anomaly/streams/six/points", json=big), 413, "payload_too_large")
    assert error["detail"] == {"max_points": 2000, "points": 2004} and "334 rows of 6 channels" in error["message"]
    for series_id in ("six", "one", "another"):
        assert client.delete(f"/anomaly/streams/{series_id}").status_code == 204


def test_a_key_quota_counts_channels_too(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "s.sqlite3", max_streams=100, max_per_owner=4)
    store.append("alice", "pair", np.ones((3, 2)), None, None, DEFAULT)
    store.append("alice", "pair2", np.ones((3, 2)), None, None, DEFAULT)
    with pytest.raises(Exception, match="DEEPSERVE_MAX_STREAMS_PER_CLIENT"):
        store.append("alice", "one", np.ones(3), None, None, DEFAULT)
    store.append("bob", "one", np.ones(3), None, None, DEFAULT)
    store.close()


def test_an_append_costs_each_channels_state() -> None:
    """Admission counts a row's every channel: a 16-channel append costs 31 more detectors' state than one of one
    channel (16 channels and 16 departures at most)."""
    registry = ModelRegistry(Settings(models_dir=COMMITTED_MODELS, models=["nearest_context"]))
    registry.load_all()
    runtime = StreamRuntime(registry.runtime("nearest_context", NearestContextRuntime))
    config = runtime.base.config

    def cost(values: list) -> int:
        return runtime.cost(StreamAppend(None, "", "s", StreamPointsRequest(values=values)))  # type: ignore[arg-type]

    assert cost([[1.0] * 16] * 10) - cost([1.0] * 10) >= 31 * state_bytes(config)
    assert cost([[1.0]] * 10) == cost([1.0] * 10)


def test_a_file_from_before_channels_gets_them_and_its_streams_go_on(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    state = DetectorState()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE streams (owner TEXT NOT NULL, id TEXT NOT NULL, sensitivity REAL NOT NULL, "
            "points INTEGER NOT NULL, last_time REAL, created REAL NOT NULL, updated REAL NOT NULL, "
            "state BLOB NOT NULL, PRIMARY KEY (owner, id))"
        )
        db.execute("INSERT INTO streams VALUES ('', 'old', 0.5, 0, NULL, 1e9, 4e9, ?)", (state.to_bytes(),))
    db.close()
    store = StreamStore(path, max_streams=3)
    assert store.get("", "old").channels is None
    stream, _, first = store.append("", "old", np.ones(4), None, None, DEFAULT)
    assert first == 0 and stream.points == 4
    store.append("", "pair", np.ones((4, 2)), None, None, DEFAULT, channels=["x", "y"])
    assert [s.channels for s in store.list("", 10)[0]] == [None, ["x", "y"]]
    store.close()


def test_a_channel_missing_through_the_warm_up_is_scored_once_it_comes() -> None:
    """No coupling can be measured (no complete warm-up row): each channel alone, as in the batch answer, with no
    warning from the empty warm-up column."""
    table = three_channels()
    table[:200, 2] = np.nan
    batch = multivariate.score(table, NAMES)
    state = multivariate_stream.ChannelsState.new(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = [
            multivariate_stream.update(state, table[a:b], a, NAMES, 0.5, DEFAULT) for a, b in [(0, 149), (149, ROWS)]
        ]
    assert parts[-1].peers == batch.peers == {}
    assert np.concatenate([p.alarm for p in parts]).tolist() == batch.alarm.tolist() and batch.alarm[SPIKE]
    assert parts[0].status == ["warming_up"] * 149


@pytest.mark.slow  # 16 channels of 600 rows, batch and stream: about 6 s
def test_sixteen_channels_fed_in_parts_give_the_batch_answer_with_its_widened_limits() -> None:
    """The channels' limits widen with their number (16 here), the departures' do not: a stream fed in parts
    across the warm-up's end and the event still gives the batch answer."""
    rng = np.random.default_rng(3)
    rows, names = 600, [f"c{c}" for c in range(16)]
    load = np.convolve(rng.normal(0, 1, rows + 40), np.ones(40) / 40, mode="valid")[:rows] * 6
    table = rng.normal(0.0, 1.0, (rows, 16))
    table[:, :6] = load[:, None] * rng.uniform(1, 3, 6) + rng.normal(0, 0.1, (rows, 6))  # six coupled channels
    table[400, 2] += 8.0
    batch = multivariate.score(table, names)
    assert len(batch.peers) == 6 and any(a.index == 400 and list(a.scores) == ["c2"] for a in batch.alarms)
    state, at, outs = multivariate_stream.ChannelsState.new(16), 0, []
    for end in [multivariate.CHANNEL_WARMUP - 1, multivariate.CHANNEL_WARMUP + 1, 399, 401, rows]:
        state = multivariate_stream.ChannelsState.from_bytes(state.to_bytes())
        outs.append(multivariate_stream.update(state, table[at:end], at, names, 0.5, DEFAULT))
        at = end
    assert np.concatenate([o.alarm for o in outs]).tolist() == batch.alarm.tolist()
    np.testing.assert_allclose(np.concatenate([o.score for o in outs]), batch.score, rtol=1e-9, atol=1e-12)
    last = {a.alarm.index: a.alarm for o in outs for a in o.alarms}
    assert [(a.index, a.kind, list(a.scores)) for a in map(last.get, sorted(last))] == [
        (a.index, a.kind, list(a.scores)) for a in batch.alarms
    ]


def test_a_stream_of_several_channels_warms_up_150_rows_and_one_channel_the_detectors_100(client) -> None:
    """The served detector learns 100 points; several channels keep the 150-row warm-up their rules were chosen
    with (multivariate.CHANNEL_WARMUP), in the stream's status and in each answer's."""
    table = three_channels()[:120]
    one = client.post("/anomaly/streams/solo/points", json={"values": table[:, 0].tolist()}).json()
    rows = client.post("/anomaly/streams/trio/points", json={"values": table.tolist(), "channels": NAMES}).json()
    assert one["stream"]["status"] == "ready" and one["status"][DEFAULT.warmup] == "scored" and DEFAULT.warmup < 120
    assert rows["stream"]["status"] == "warming_up" and set(rows["status"]) == {"warming_up"}
    listed = {s["series_id"]: s["status"] for s in client.get("/anomaly/streams").json()["streams"]}
    assert listed == {"solo": "ready", "trio": "warming_up"}
    rest = three_channels()[120:160]
    after = client.post("/anomaly/streams/trio/points", json={"values": rest.tolist()}).json()
    assert after["stream"]["status"] == "ready" and after["status"][150 - 120] == "scored"
    for series_id in ("solo", "trio"):
        assert client.delete(f"/anomaly/streams/{series_id}").status_code == 204
