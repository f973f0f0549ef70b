"""The anomaly training script (training/train_anomaly.py): arguments, models, the artifact of the session's tiny
run (conftest's `anomaly_models`), a threshold that ignores labels, and the committed artifact on real NAB data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.families.anomaly.scoring import normalise, score_series, sliding_windows
from app.manifest import read_manifest
from tests.support.nab_like import SERIES, TINY, synthetic_series, write_nab_root
from tests.support.paths import COMMITTED_MODELS, SHARED_DATA
from training.common.nab_data import load_nab_series, load_nab_windows


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


def test_training_writes_a_servable_artifact(anomaly_models: Path) -> None:
    import keras
    import onnxruntime as ort

    models = anomaly_models  # conftest trains it once per session with TINY
    out = models / "anomaly" / "1"
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


@pytest.mark.slow
def test_threshold_does_not_depend_on_labels(anomaly_models: Path, tmp_path: Path) -> None:
    """Same data and seed, labels moved elsewhere: identical threshold and scores, different evaluation. Needs its own
    training run (the second of the session), on the same series with other label windows."""
    from training.train_anomaly import main

    first = anomaly_models / "anomaly" / "1"
    write_nab_root(tmp_path / "nab", spans=[(100, 120)])
    out = main(["--data", str(tmp_path / "nab"), "--out", str(tmp_path / "models"), *TINY])
    assert out == tmp_path / "models" / "anomaly" / "1"  # main returns the artifact folder it wrote
    a = json.loads((first / "config.json").read_text())
    b = json.loads((out / "config.json").read_text())
    assert b["threshold"] == pytest.approx(a["threshold"], rel=1e-5)
    assert json.loads((out / "metrics.json").read_text())["windows_total"] == 1


# The committed artifact on the real series, through ONNX and the serving scoring code.


@pytest.mark.real_data
def test_committed_artifact_meets_target_on_real_nyc_taxi() -> None:
    nab = SHARED_DATA / "nab"
    if not (nab / "data" / SERIES).is_file():
        pytest.skip(f"real NAB data not found at {nab}")
    entry = read_manifest(COMMITTED_MODELS).served().get("anomaly")
    if entry is None:
        pytest.fail("no committed anomaly artifact in models/anomaly/")
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
