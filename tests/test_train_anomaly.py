"""The anomaly scorer: NAB loading, the shared numpy scoring, a tiny training run, and the committed artifact."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.families.anomaly.scoring import (
    alarm_regions,
    normalise,
    point_scores,
    score_series,
    sliding_windows,
    smooth,
    window_starts,
)
from app.manifest import read_manifest
from training.common import nab_data
from training.common.nab_data import load_nab_series, load_nab_windows, window_mask

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COMMITTED_MODELS = ROOT / "models"
SERIES = "realKnownCause/nyc_taxi.csv"

# Two weeks plus of synthetic 30-minute traffic: a daily cycle, quieter weekends, and two injected anomalies.
DAYS = 21
STEPS_PER_DAY = 48
ANOMALIES = [(10 * STEPS_PER_DAY + 10, 10 * STEPS_PER_DAY + 40), (17 * STEPS_PER_DAY, 17 * STEPS_PER_DAY + 30)]


def synthetic_series(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = DAYS * STEPS_PER_DAY
    timestamps = np.datetime64("2014-07-01T00:00:00") + np.arange(n) * np.timedelta64(30, "m")
    day = np.arange(n) / STEPS_PER_DAY
    weekend = ((day // 1) % 7 >= 5).astype(float)
    values = 15000 + 7000 * np.sin(2 * np.pi * (day - 0.3)) * (1 - 0.4 * weekend) + rng.normal(0, 400, n)
    a, b = ANOMALIES[0]
    values[a:b] = 2000  # a storm: traffic collapses
    a, b = ANOMALIES[1]
    values[a:b] += 15000  # an event: a surge at night
    return timestamps, values


def write_csv(path: Path, timestamps: np.ndarray, values: np.ndarray, order: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.arange(len(values)) if order is None else order
    rows = [f"{str(timestamps[i]).replace('T', ' ')},{values[i]:.0f}" for i in order]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def label_windows(timestamps: np.ndarray, spans: list[tuple[int, int]]) -> list[list[str]]:
    fmt = lambda t: str(t).replace("T", " ") + ".000000"  # noqa: E731 - NAB's own timestamp format
    return [[fmt(timestamps[a]), fmt(timestamps[b])] for a, b in spans]


def write_nab_root(root: Path, spans: list[tuple[int, int]] = ANOMALIES) -> tuple[np.ndarray, np.ndarray]:
    timestamps, values = synthetic_series()
    write_csv(root / "data" / SERIES, timestamps, values)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    windows = {SERIES: label_windows(timestamps, spans), "other/x.csv": []}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return timestamps, values


# Loading.


def test_loads_nab_root_folder_and_windows(tmp_path: Path) -> None:
    timestamps, values = write_nab_root(tmp_path)
    t, v = load_nab_series(tmp_path)
    assert t.dtype == np.dtype("datetime64[s]") and v.dtype == np.float64
    np.testing.assert_array_equal(t, timestamps.astype("datetime64[s]"))
    np.testing.assert_allclose(v, np.round(values))
    windows = load_nab_windows(tmp_path)
    assert len(windows) == 2
    mask = window_mask(t, windows)
    assert mask.sum() == sum(b - a + 1 for a, b in ANOMALIES)
    assert mask[ANOMALIES[0][0]] and not mask[ANOMALIES[0][0] - 1]


def test_single_csv_sorted_and_labels_optional(tmp_path: Path) -> None:
    timestamps, values = synthetic_series()
    shuffled = np.random.default_rng(1).permutation(len(values))
    csv = write_csv(tmp_path / "series.csv", timestamps, values, order=shuffled)
    t, v = load_nab_series(csv)
    assert (np.diff(t) > np.timedelta64(0, "s")).all()
    np.testing.assert_allclose(v, np.round(values))
    assert load_nab_windows(csv) is None
    with pytest.raises(FileNotFoundError):
        load_nab_windows(csv, required=True)


def test_csv_inside_nab_tree_finds_root_labels(tmp_path: Path) -> None:
    write_nab_root(tmp_path)
    assert len(load_nab_windows(tmp_path / "data" / SERIES)) == 2


def test_missing_series_and_bad_csv_raise(tmp_path: Path) -> None:
    write_nab_root(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_nab_series(tmp_path, series="realKnownCause/missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,val\n2014-07-01 00:00:00,1\n")
    with pytest.raises(ValueError):
        load_nab_series(bad)


def test_download_path_fills_the_cache_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download code runs against a fake urlopen: no network in tests, but the real caching logic."""
    source = tmp_path / "source"
    write_nab_root(source)
    requested: list[str] = []

    def fake_urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        requested.append(url)
        relative = url.removeprefix(nab_data.NAB_RAW_URL + "/")
        return io.BytesIO((source / relative).read_bytes())

    monkeypatch.setattr(nab_data.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(nab_data, "CACHE_DIR", tmp_path / "cache")
    t, _ = load_nab_series(None)
    assert len(t) == DAYS * STEPS_PER_DAY
    assert len(load_nab_windows(None)) == 2
    load_nab_series(None)
    assert requested == [
        "https://raw.githubusercontent.com/numenta/NAB/master/data/realKnownCause/nyc_taxi.csv",
        "https://raw.githubusercontent.com/numenta/NAB/master/labels/combined_windows.json",
    ]
    assert (tmp_path / "cache" / "data" / SERIES).is_file()


# Scoring (app/families/anomaly/scoring.py).


@pytest.mark.parametrize(("length", "window", "stride"), [(100, 10, 1), (100, 10, 7), (101, 10, 10), (10, 10, 3)])
def test_windows_cover_every_point(length: int, window: int, stride: int) -> None:
    x = np.arange(length, dtype=np.float32)
    windows, starts = sliding_windows(x, window, stride)
    assert windows.shape == (len(starts), window)
    assert starts[0] == 0 and starts[-1] == length - window
    np.testing.assert_array_equal(windows[:, 0], starts)
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()


def test_windows_reject_short_series_and_bad_arguments() -> None:
    with pytest.raises(ValueError):
        window_starts(9, 10, 1)
    with pytest.raises(ValueError):
        window_starts(100, 10, 0)
    with pytest.raises(ValueError):
        normalise(np.ones(5), 0.0, 0.0)


def test_point_scores_average_over_covering_windows() -> None:
    x = np.zeros(7)
    windows, starts = sliding_windows(x, 3, 2)  # starts 0, 2, 4
    recon = np.zeros((len(starts), 3, 1))
    recon[1, :, 0] = 2.0  # the window covering points 2..4 is off by 2 everywhere
    scores = point_scores(x, recon, starts)
    # Point 2 is covered by windows 0 and 1: (0 + 4) / 2; point 3 only by window 1; point 4 by windows 1 and 2.
    np.testing.assert_allclose(scores, [0, 0, 2, 4, 2, 0, 0])
    assert point_scores(x, recon, starts, smoothing=3).shape == (7,)


def test_smooth_keeps_constants_and_spreads_spikes() -> None:
    np.testing.assert_allclose(smooth(np.full(10, 3.0), 4), 3.0)
    spike = np.zeros(11)
    spike[5] = 5.0
    smoothed = smooth(spike, 5)
    np.testing.assert_allclose(smoothed.sum(), 5.0)
    assert smoothed.max() == pytest.approx(1.0) and (smoothed[3:8] > 0).all()


def test_alarm_regions_are_maximal_runs() -> None:
    flags = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert alarm_regions(flags) == [(0, 1), (4, 4), (6, 8)]
    assert alarm_regions(np.zeros(5, dtype=bool)) == []


def test_score_series_flags_what_the_model_cannot_reconstruct() -> None:
    """With a 'model' that returns the typical (anomaly-free) cycle, only the injected anomalies are flagged."""
    _, values = synthetic_series()
    mean, std = values.mean(), values.std()
    config = {"window": 48, "stride": 5, "mean": mean, "std": std, "smoothing": 6, "threshold": 0.5}
    day = np.arange(len(values)) / STEPS_PER_DAY
    weekend = ((day // 1) % 7 >= 5).astype(float)
    typical = normalise(15000 + 7000 * np.sin(2 * np.pi * (day - 0.3)) * (1 - 0.4 * weekend), mean, std)
    typical_windows, _ = sliding_windows(typical, 48, 5)
    served = 0

    def reconstruct(batch: np.ndarray) -> np.ndarray:
        # Batches arrive in window order, so a counter tells which typical windows they stand for.
        nonlocal served
        out = typical_windows[served : served + len(batch)]
        served += len(batch)
        assert batch.dtype == np.float32 and batch.shape[1:] == (48, 1)
        return out[..., None]

    result = score_series(values, reconstruct, config)
    assert served == len(typical_windows)
    assert result["scores"].shape == values.shape
    assert result["flags"].dtype == bool
    regions = result["regions"]
    assert len(regions) == 2
    for (a, b), (ta, tb) in zip(regions, ANOMALIES, strict=True):
        assert a <= tb and b >= ta  # each region overlaps its anomaly


def test_scoring_module_does_not_import_tensorflow() -> None:
    code = "import sys, app.families.anomaly.scoring; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# Training.


def test_parse_args_rejects_bad_values() -> None:
    from training.train_anomaly import parse_args

    for bad in (["--probation", "1.5"], ["--stride", "0"], ["--window", "0"], ["--threshold-margin", "0"]):
        with pytest.raises(ValueError):
            parse_args(bad)
    assert parse_args([]).config == "bottleneck"


def test_bottleneck_model_has_a_small_code() -> None:
    from training.train_anomaly import build_model

    model = build_model("bottleneck", 336, code_size=4)
    assert model.get_layer("code").units == 4
    assert model.output_shape == (None, 336, 1)
    seed = build_model("seed", 288, dropout=0.2)
    assert seed.output_shape == (None, 288, 1)
    # The seed encoder's output holds 2x the window's numbers: the known reason it reconstructs anomalies too.
    assert int(np.prod(seed.layers[3].output.shape[1:])) == 2 * 288
    with pytest.raises(ValueError):
        build_model("bottleneck", 100)


TINY = ["--window", "48", "--epochs", "1", "--eval-seeds", "1", "--no-compare", "--train-stride", "4", "--stride", "3"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from training.train_anomaly import main

    root = tmp_path_factory.mktemp("nab")
    write_nab_root(root)
    models = tmp_path_factory.mktemp("models")
    out = main(["--data", str(root), "--out", str(models), *TINY])
    return models, out


def test_training_writes_a_servable_artifact(tiny_run: tuple[Path, Path]) -> None:
    import keras
    import onnxruntime as ort

    models, out = tiny_run
    assert out == models / "anomaly" / "1"
    for name in ("model.keras", "model.onnx", "config.json", "metrics.json", "training_curves.png", "scores.png"):
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert {"window", "stride", "mean", "std", "smoothing", "threshold"} <= set(config)
    assert (config["window"], config["stride"], config["smoothing"]) == (48, 3, 12)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["windows_total"] == 2 and 0 <= metrics["windows_detected"] <= 2
    assert len(metrics["comparison"]["default"]["per_seed"]) == 1
    [entry] = [m for m in read_manifest(models).models if m.name == "anomaly"]
    assert (entry.version, entry.runtime, entry.task) == ("1", "anomaly-onnx", "anomaly-detection/timeseries")
    assert entry.command.startswith("python -m training.train_anomaly --data")

    # ONNX (what the service runs) and Keras agree on the reconstruction of real windows and on the scores.
    _, values = synthetic_series()
    windows, _ = sliding_windows(normalise(np.round(values), config["mean"], config["std"]), 48, 3)
    batch = windows[:64, :, None].astype(np.float32)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    keras_out = np.asarray(keras.saving.load_model(out / "model.keras")(batch))
    assert onnx_out.shape == batch.shape
    np.testing.assert_allclose(onnx_out, keras_out, atol=1e-4)
    assert metrics["onnx_max_abs_score_diff"] < 1e-4


def test_threshold_does_not_depend_on_labels(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    """Same data and seed, labels moved elsewhere: identical threshold and scores, different evaluation."""
    from training.train_anomaly import main

    _, first = tiny_run
    write_nab_root(tmp_path / "nab", spans=[(100, 120)])
    out = main(["--data", str(tmp_path / "nab"), "--out", str(tmp_path / "models"), *TINY])
    a = json.loads((first / "config.json").read_text())
    b = json.loads((out / "config.json").read_text())
    assert b["threshold"] == pytest.approx(a["threshold"], rel=1e-5)
    assert json.loads((out / "metrics.json").read_text())["windows_total"] == 1


# The committed artifact on the real series, through ONNX and the serving scoring code.


def test_committed_artifact_meets_target_on_real_nyc_taxi() -> None:
    nab = SHARED_DATA / "nab"
    if not (nab / "data" / SERIES).is_file():
        pytest.skip(f"real NAB data not found at {nab}")
    entry = read_manifest(COMMITTED_MODELS).latest().get("anomaly")
    if entry is None:
        pytest.fail("no committed anomaly artifact in models/manifest.json")
    import onnxruntime as ort

    from training.train_anomaly import evaluate

    folder = COMMITTED_MODELS / entry.path
    config = json.loads((folder / entry.files["config"]).read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(folder / entry.files["onnx"]), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    timestamps, values = load_nab_series(nab)
    result = score_series(values, lambda w: session.run(None, {name: w})[0], config)
    found = evaluate(result["flags"], timestamps, load_nab_windows(nab))
    assert found["windows_detected"] >= 4, found
    assert found["false_alarm_regions"] <= 3, found
    # The numbers the artifact reports are the ones serving reproduces.
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (found["windows_detected"], found["false_alarm_regions"]) == (
        metrics["windows_detected"],
        metrics["false_alarm_regions"],
    )
    assert metrics["comparison"]["default"]["meets_target"] is True
