"""POST /predict/anomaly with several channels (values as rows): one alarm stream naming the channels behind each
alarm, each channel also scored alone, and bad shapes refused with 422 (never 500)."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.errors import PayloadTooLarge
from app.families.anomaly import multivariate, series
from app.families.anomaly.detector import DEFAULT, Scored
from app.families.anomaly.schemas import MAX_VALUES
from tests.support.paths import COMMITTED_MODELS
from tests.support.seasonal import seasonal
from tests.support.service import assert_error, serve

ROWS = 800
SPIKE = 600  # the row where channel "mem" alone jumps
NAMES = ["cpu", "mem", "disk"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(models_dir=COMMITTED_MODELS, models=["nearest_context"], data_dir=tmp_path_factory.mktemp("d"))
    with serve("asgi", settings) as c:
        yield c


def three_channels() -> np.ndarray:
    """One daily cycle seen by three channels at their own scales and noise (disk moves against the others)."""
    cpu = seasonal(scale=20, offset=50, events=False, seed=1)[:ROWS]
    mem = seasonal(scale=300, offset=4000, events=False, seed=2)[:ROWS]
    disk = seasonal(scale=-2, offset=10, events=False, seed=3)[:ROWS]
    table = np.stack([cpu, mem, disk], axis=1)
    table[SPIKE, 1] += 2.5 * 300
    return table


def decoupled(seed: int = 0) -> np.ndarray:
    """Two channels that follow one wandering load, until b follows another load of the same kind for 150 rows:
    each channel alone looks as it always does, only their relation breaks."""
    rng = np.random.default_rng(seed)

    def load(n: int) -> np.ndarray:
        return np.convolve(rng.normal(0, 1, n + 40), np.ones(40) / 40, mode="valid")[:n] * 6

    shared, other = load(ROWS), load(ROWS)
    a = shared + rng.normal(0, 0.05, ROWS)
    b = 2 * shared + 5 + rng.normal(0, 0.1, ROWS)
    event = slice(SPIKE, SPIKE + 150)
    b[event] = 2 * (shared[SPIKE] + other[event] - other[SPIKE]) + 5 + rng.normal(0, 0.1, 150)
    return np.stack([a, b], axis=1)


def test_rows_with_named_channels_name_the_channel_that_drove_the_alarm(client) -> None:
    table = three_channels()
    body = {"values": table.tolist(), "channels": NAMES}
    response = client.post("/predict/anomaly", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["channels"] == NAMES and out["peers"]["mem"] == ["cpu", "disk"]
    assert len(out["scores"]) == len(out["is_anomaly"]) == len(out["status"]) == ROWS
    warmup = multivariate.CHANNEL_WARMUP  # several channels learn 150 rows, whatever the served detector's warm-up
    assert out["status"][:warmup] == ["warming_up"] * warmup and out["status"][warmup] == "scored"
    assert out["warmup"] == warmup
    [alarm] = [a for a in out["alarms"] if abs(a["index"] - SPIKE) < multivariate.JOIN]
    assert alarm["index"] == SPIKE and alarm["kind"] == "channels" and alarm["channels"] == ["mem"]
    mem, cpu = out["per_channel"]["mem"], out["per_channel"]["cpu"]
    assert alarm["scores"]["mem"] == max(mem["scores"][SPIKE : SPIKE + multivariate.JOIN]) and out["is_anomaly"][SPIKE]
    assert mem["is_anomaly"][SPIKE] and mem["direction"][SPIKE] == "spike" and not cpu["is_anomaly"][SPIKE]
    assert out["scores"][SPIKE] >= mem["scores"][SPIKE]
    assert out["missing"] == {name: {"count": 0, "indices": []} for name in NAMES}


def test_unnamed_rows_with_nulls_and_timestamps(client) -> None:
    rows: list[list[float | None]] = three_channels().tolist()
    rows[300][2] = None
    rows[301] = [None, None, None]
    stamps = [str(np.datetime64("2024-01-01T00:00") + i * np.timedelta64(15, "m")) for i in range(ROWS)]
    out = client.post("/predict/anomaly", json={"values": rows, "timestamps": stamps}).json()
    assert out["channels"] == ["0", "1", "2"]
    assert out["missing"]["2"] == {"count": 2, "indices": [300, 301]} and out["missing"]["0"]["count"] == 1
    assert out["status"][300] == "scored" and out["status"][301] == "missing"
    assert out["per_channel"]["2"]["status"][300] == "missing" and out["per_channel"]["2"]["expected"][300] is None
    [alarm] = [a for a in out["alarms"] if a["index"] == SPIKE]
    assert alarm["channels"] == ["1"] and alarm["time"] == stamps[SPIKE] + ":00"
    assert out["sampling"]["step_seconds"] == 900.0


def test_a_broken_correlation_alone_is_an_alarm_of_kind_correlation(client) -> None:
    table = decoupled()
    out = client.post("/predict/anomaly", json={"values": table.tolist(), "channels": ["a", "b"]}).json()
    assert out["peers"] == {"a": ["b"], "b": ["a"]}
    assert not any(out["per_channel"][n]["is_anomaly"][SPIKE : SPIKE + 150].count(True) for n in "ab")
    during = [a for a in out["alarms"] if SPIKE <= a["index"] < SPIKE + 150]
    assert during and during[0]["kind"] == "correlation" and set(during[0]["channels"]) <= {"a", "b"}


def test_one_channel_answers_as_before(client) -> None:
    """A one-channel series sent as a plain list keeps the univariate answer (no channels, alarms or peers)."""
    values = three_channels()[:, 1]
    out = client.post("/predict/anomaly", json={"values": values.tolist()}).json()
    assert "channels" not in out and "per_channel" not in out
    assert out["is_anomaly"][SPIKE] and "status" in out and "direction" in out


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"values": [[1.0, 2.0]] * 200 + [[1.0]]}, "row 200 has 1 value: no value for channel '1'"),
        ({"values": [[1.0, 2.0]] * 200, "channels": ["cpu", "mem", "disk"]}, "no value for channel 'disk'"),
        ({"values": [[1.0, 2.0, 3.0]] * 200, "channels": ["cpu", "mem"]}, "row 0 has 3 values: more values than"),
        ({"values": [[1.0, 2.0]] * 200, "channels": ["cpu", "cpu"]}, "channel names repeat"),
        ({"values": [1.0] * 200, "channels": ["cpu"]}, "send `values` as rows"),
        ({"values": [[1.0, 2.0]] * 100 + [1.0] * 100}, "valid"),
        ({"values": [[]] * 200}, "at least 1 item"),
        ({"values": [[1.0] * 17] * 200}, "at most 16 items"),
        ({"values": [[1.0, "2"]] * 200}, "valid number"),
    ],
)
def test_bad_shapes_are_422(client, body: dict, says: str) -> None:
    error = assert_error(client.post("/predict/anomaly", json=body), 422, "invalid_input")
    assert says in str(error["detail"]), error


def test_a_channel_with_too_few_values_is_422_naming_it(client) -> None:
    rows: list[list[float | None]] = three_channels().tolist()
    for row in rows[100:]:
        row[2] = None
    response = client.post("/predict/anomaly", json={"values": rows, "channels": NAMES})
    error = assert_error(response, 422, "invalid_input")
    assert error["message"].startswith("Channel 'disk':") and error["detail"]["channel"] == "disk"
    assert error["detail"]["missing"] == ROWS - 100


def test_more_values_than_the_limit_is_413(client) -> None:
    rows = (MAX_VALUES // 16) + 1
    body = {"values": [[float(i % 7)] * 16 for i in range(rows)]}
    error = assert_error(client.post("/predict/anomaly", json=body), 413, "payload_too_large")
    assert error["detail"] == {"max_values": MAX_VALUES, "values": rows * 16}
    assert f"than {MAX_VALUES:,}" in PayloadTooLarge.when  # the error table (docs/errors.md) states the limit


def test_openapi_describes_rows_and_channels(client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    values = schema["AnomalyRequest"]["properties"]["values"]
    assert [v["type"] for v in values["anyOf"]] == ["array", "array"]
    assert values["anyOf"][1]["items"]["type"] == "array" and values["anyOf"][1]["items"]["maxItems"] == 16
    assert "channels" in schema["AnomalyRequest"]["properties"]
    assert {"alarms", "per_channel", "peers"} <= set(schema["MultivariateAnomalyResponse"]["properties"])


def scored_with_alarms(rows: int, alarms: dict[int, float]) -> Scored:
    """A channel's detector output with alarms (row -> score) and score 1 elsewhere, all rows scored."""
    out = Scored.empty(rows)
    out.warming_up[:] = False
    out.score[:] = 1.0
    for row, value in alarms.items():
        out.alarm[row], out.score[row] = True, value
    return out


def test_alarms_of_other_channels_within_join_rows_are_one_event() -> None:
    a = scored_with_alarms(100, {20: 5.0, 60: 4.0})
    b = scored_with_alarms(100, {20 + multivariate.JOIN - 1: 7.0, 60 + multivariate.JOIN: 6.0})
    combined = multivariate.combine(["a", "b"], [a, b], {}, {})
    assert [(x.index, x.kind, x.scores) for x in combined.alarms] == [
        (20, "channels", {"a": 5.0, "b": 7.0}),
        (60, "channels", {"a": 4.0}),
        (60 + multivariate.JOIN, "channels", {"b": 6.0}),
    ]
    assert np.flatnonzero(combined.alarm).tolist() == [20, 60, 60 + multivariate.JOIN]
    assert combined.score[20 + multivariate.JOIN - 1] == 7.0 and combined.status == ["scored"] * 100


def test_a_correlation_alarm_names_the_departures_near_the_highest_and_yields_to_a_channel_alarm() -> None:
    quiet = scored_with_alarms(100, {})
    departures = {
        "a": scored_with_alarms(100, {30: 9.0, 70: 3.0}),
        "b": scored_with_alarms(100, {31: 6.5}),  # over 2/3 of 9: named
        "c": scored_with_alarms(100, {32: 5.0}),  # under: not named
        "d": scored_with_alarms(100, {71: 9.0}),
    }
    channels = [quiet, quiet, quiet, scored_with_alarms(100, {72: 4.0})]  # d alarms on its own at 72
    combined = multivariate.combine(["a", "b", "c", "d"], channels, departures, {})
    assert [(x.index, x.kind, list(x.scores)) for x in combined.alarms] == [
        (30, "correlation", ["a", "b"]),
        (70, "channels", ["d"]),
    ]


@pytest.mark.slow  # 16 channels of 1,000 rows scored twice: about 6 s
def test_sixteen_independent_channels_alarm_about_as_often_as_one_and_still_find_a_spike_in_one() -> None:
    """With the correction for the number of series, 16 channels of independent noise raise at most twice the
    chance alarms of one channel sent alone (without it, per_log 0, more), and an 8-sigma spike in one channel is
    still an alarm naming that channel."""
    rows, spike, names = 1000, 700, [f"c{c}" for c in range(16)]
    table = np.random.default_rng(0).normal(0.0, 1.0, (rows, len(names)))
    table[spike, 5] += 8.0
    uncorrected = multivariate.score(table, names, per_log=0.0)
    corrected = multivariate.score(table, names)
    assert corrected.peers == {}  # independent: 16 channels, each with limits 1 + 0.7 ln 16 = 2.9 times wider
    alone = [series.score_series(table[:, c]) for c in range(len(names))]  # each channel as a one-channel request
    one_channel = np.mean([np.delete(s.alarm, spike).sum() for s in alone])  # chance, per channel
    false = [a.index for a in corrected.alarms if a.index != spike]
    assert 0.5 <= one_channel and len(false) <= 2 * one_channel
    assert sum(a.index != spike for a in uncorrected.alarms) > 2 * one_channel  # what the correction removes
    [found] = [a for a in corrected.alarms if a.index == spike]
    assert found.kind == "channels" and list(found.scores) == ["c5"]


def test_one_channel_of_rows_is_scored_as_a_one_channel_request() -> None:
    """m = 1 series: no widening, the very scores and alarms of the flat series."""
    values = three_channels()[:, 1]
    alone = series.score_series(values)
    combined = multivariate.score(values[:, None], ["mem"])
    np.testing.assert_array_equal(combined.channels[0].score, alone.score)
    assert combined.alarm.tolist() == alone.alarm.tolist() and alone.alarm[SPIKE]


def test_several_channels_are_scored_by_a_young_detector() -> None:
    """Right after the warm-up a channel's seen range is that of 150 rows: a value just past it is no alarm while
    the detector is young (limits x2.33 there, x1 from row 600), as far past the range later is one,
    and a clear spike early is one too. A one-channel request keeps its old limits: the early value alarms there."""
    rows, names = 1000, ["a", "b", "c"]
    table = np.random.default_rng(3).uniform(-1.0, 1.0, (rows, len(names)))
    table[:, 0] = np.clip(table[:, 0], -0.9, 0.9)
    table[:150, 0] = np.linspace(-1.0, 1.0, 150)  # channel a's warm-up range: exactly [-1, 1]
    table[200, 0] = 1.45  # past that range by 0.45, more than a widened tolerance (0.152 x 2), less than x2.33 it
    table[800, 0] = 1.9  # past the range then seen ([-1, 1.45]) by 0.45, more than 0.152 x 2.45
    alarms = {a.index: list(a.scores) for a in multivariate.score(table, names).alarms}
    assert 200 not in alarms and alarms[800] == ["a"]
    assert 200 in {int(t) for t in np.flatnonzero(series.score_series(table[:, 0]).alarm)}
    table[300, 1] = 8.0
    assert {a.index: list(a.scores) for a in multivariate.score(table, names).alarms}[300] == ["b"]


def test_several_channels_keep_100_rows_between_a_channels_alarms_under_a_shorter_refractory_period() -> None:
    """A detector whose refractory period is 20 (models/nearest_context/4) alarms on both of two new extremes 40
    rows apart in one series; with several channels each channel keeps 100 rows (CHANNEL_REFRACTORY), the period
    every several-channel rule was chosen with, so the second is no alarm there."""
    from dataclasses import replace

    short = replace(DEFAULT, refractory=20)
    rows, names = 1000, ["a", "b", "c"]
    table = np.random.default_rng(4).uniform(-1.0, 1.0, (rows, len(names)))
    table[700, 0], table[740, 0] = 6.0, 12.0  # the second well past the first: a new extreme either way
    alone = np.flatnonzero(series.score_series(table[:, 0], config=short).alarm).tolist()
    assert 700 in alone and 740 in alone
    found = {a.index for a in multivariate.score(table, names, config=short).alarms}
    assert 700 in found and 740 not in found
    assert 740 in {a.index for a in multivariate.score(table[:, :1], names[:1], config=short).alarms}  # one channel
