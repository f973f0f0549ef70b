"""The digit training script: architecture, data loaders, and the artifact it writes."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from app.manifest import read_manifest
from training.common.mnist_data import IDX_FILES, load_mnist, read_idx
from training.train_digit import build_model


def test_seed_architecture_has_93322_parameters() -> None:
    model = build_model()
    assert model.count_params() == 93_322
    assert [layer.__class__.__name__ for layer in model.layers].count("Conv2D") == 3


def test_wide_variant() -> None:
    model = build_model(wide=True)
    assert [layer.__class__.__name__ for layer in model.layers].count("Conv2D") == 2
    assert model.layers[-2].units == 128


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_loads_idx_gz_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (5, 28, 28)),
        "y_train": rng.integers(0, 10, 5),
        "x_test": rng.integers(0, 256, (3, 28, 28)),
        "y_test": rng.integers(0, 10, 3),
    }
    for key, name in IDX_FILES.items():
        write_idx(tmp_path / name, arrays[key])
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path)
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert x_test.shape == (3, 28, 28) and y_train.dtype == np.uint8


def test_idx_reader_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd"))
    with pytest.raises(ValueError, match="uint8 IDX"):
        read_idx(tmp_path / "bad.gz")


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="IDX"):
        load_mnist(tmp_path)


def test_training_writes_a_complete_artifact(trained_models_dir: Path, small_mnist_npz: Path) -> None:
    entry = read_manifest(trained_models_dir).latest()["digit"]
    folder = trained_models_dir / entry.path
    assert entry.version == "1" and entry.runtime == "digit-onnx"
    assert str(small_mnist_npz) in entry.command and entry.command.startswith("python -m training.train_digit")
    for role, name in entry.files.items():
        assert (folder / name).stat().st_size > 0, role
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["parameters"] == 93_322 and metrics["epochs"] == 4
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["test_examples"] == 297
    assert metrics["onnx_max_abs_diff"] < 1e-4 and metrics["onnx_test_accuracy"] == pytest.approx(
        metrics["test_accuracy"], abs=0.005
    )
    assert metrics["test_accuracy"] > 0.5  # a few epochs on real handwriting already learn something
    assert {"tensorflow", "keras", "onnxruntime"} <= set(metrics["libraries"])


@pytest.mark.slow
def test_second_run_gets_the_next_version(tmp_path: Path, small_mnist_npz: Path) -> None:
    from training import train_digit

    for _ in range(2):
        train_digit.main(["--data", str(small_mnist_npz), "--out", str(tmp_path), "--epochs", "1", "--limit", "300"])
    manifest = read_manifest(tmp_path)
    assert sorted(m.version for m in manifest.models) == ["1", "2"] and manifest.latest()["digit"].path == "digit/2"
    assert manifest.promoted == {"digit": "1"}  # the second run is a candidate: the first stays served
    first, second = (entry.data for entry in manifest.versions("digit"))
    assert first == second and first.startswith("sha256:")  # the same data, fingerprinted
