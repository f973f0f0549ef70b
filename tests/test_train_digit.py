"""The digit training script: architecture, data loaders, and the artifact it writes."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from app.manifest import read_manifest
from tests.support.paths import COMMITTED_MODELS
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


@pytest.mark.slow
def test_outlier_exposure_lowers_the_confidence_on_letters_in_fonts_it_never_saw(
    tmp_path: Path, trained_models_dir: Path, small_mnist_npz: Path
) -> None:
    """--negatives: fine-tuned on letters (matplotlib's fonts but DejaVu) and noise towards a uniform answer, the
    model is far less sure of letters printed in DejaVu, and still reads digits."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    from app.families.digit.preprocess import preprocess_digit
    from training import train_digit
    from training.common import negatives
    from training.common.export import OnnxModel

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    base = trained_models_dir / read_manifest(trained_models_dir).latest()["digit"].path
    args = ["--data", str(small_mnist_npz), "--out", str(tmp_path), "--epochs", "3", "--no-augment"]
    args += ["--fine-tune", str(base / "model.keras"), "--negatives", "fonts,noise", "--negatives-count", "1000"]
    tuned = train_digit.main([*args, "--font-dir", str(fonts)])
    metrics = json.loads((tuned / "metrics.json").read_text())
    record = metrics["negatives"]
    assert record["kinds"] == ["fonts", "noise"] and 900 <= record["count"] <= 1000 and record["weight"] == 0.5
    assert "dejavu" in record["fonts_held_out"] and not any(f.startswith("DejaVu") for f in record["font_families"])
    assert metrics["fine_tuned_from"] == str(base / "model.keras") and metrics["test_accuracy"] > 0.5

    def letters(font: Path) -> np.ndarray:
        images = []
        for letter in negatives.LETTERS:
            image = Image.new("L", (100, 100), 255)
            ImageDraw.Draw(image).text((20, 10), letter, font=ImageFont.truetype(str(font), 64), fill=0)
            images.append(preprocess_digit(image))
        return np.stack(images)

    x = np.concatenate([letters(fonts / "DejaVuSans.ttf"), letters(fonts / "DejaVuSerif-Bold.ttf")])
    before, after = (OnnxModel(folder / "model.onnx")(x).max(axis=1).mean() for folder in (base, tuned))
    assert after < before - 0.15, (before, after)


def test_unknown_negatives_are_a_clear_error() -> None:
    from training.common import negatives

    with pytest.raises(ValueError, match="unknown negatives"):
        negatives.for_digits(["fonts", "cats"], 10, 0)


def test_a_kind_of_negatives_can_be_given_its_own_share(monkeypatch) -> None:
    """--negatives kind:weight: the weight replaces that kind's default share, the others keep theirs, and the count
    is split in proportion."""
    from training.common import negatives

    assert negatives.digit_shares(["fonts", "pen:0.9"]) == {"fonts": 0.6, "pen": 0.9}
    for bad, message in (("pen:lots", "must be a number"), ("pen:0", "must be positive"), ("ink:1", "unknown")):
        with pytest.raises(ValueError, match=message):
            negatives.digit_shares([bad])
    asked: dict[str, int] = {}
    monkeypatch.setattr(negatives, "noise", lambda n, rng: asked.setdefault("noise", n) * [None])
    monkeypatch.setattr(negatives, "pen_letters", lambda n, rng: asked.setdefault("pen", n) * [None])
    monkeypatch.setattr(negatives, "prepared", lambda images: (images, 0))
    negatives.for_digits(["noise", "pen"], 400, 0)
    assert asked == {"noise": 100, "pen": 300}  # 0.1 : 0.3
    asked.clear()
    negatives.for_digits(["noise:0.3", "pen:0.1"], 400, 0)
    assert asked == {"noise": 300, "pen": 100}


def test_pen_digits_are_labelled_with_the_digit_drawn() -> None:
    """--pen-digits: digits drawn with the pen negatives' pen, in the training Hershey fonts, prepared as requests;
    the served model reads them as their labels (shuffled labels would be right one time in ten)."""
    from training.common import negatives
    from training.common.export import OnnxModel

    x, y = negatives.pen_digits(60, np.random.default_rng(0))
    assert x.shape[1:] == (28, 28, 1) and len(x) == len(y) >= 55 and set(y) <= set(range(10))
    served = read_manifest(COMMITTED_MODELS).served()["digit"]
    read = OnnxModel(COMMITTED_MODELS / served.path / "model.onnx")(x).argmax(axis=1)
    assert (read == y).mean() >= 0.8, (read, y)


def test_pen_letters_are_drawn_in_hersheys_fonts_and_prepared_like_requests() -> None:
    """negatives 'pen': letters of Hershey's single-stroke fonts drawn with a round pen (jittered, slanted, either
    polarity), upright; the digit preprocessing takes them as it takes a request (the few it refuses as blank are
    left out). The held-out fonts are never drawn."""
    from training.common import negatives

    rng = np.random.default_rng(0)
    ell = np.asarray(negatives.pen_letter("futural", "L", rng).convert("L"), dtype=np.float64)
    ink = ell < 128 if ell.mean() > 128 else ell > 128
    rows = ink.sum(axis=1)
    assert rows[np.flatnonzero(rows)[-5:]].mean() > 2 * rows[np.flatnonzero(rows)[:5]].mean()  # L's foot at the bottom
    drawn = negatives.pen_letters(40, rng)
    assert len(drawn) == 40 and len({im.size for im in drawn}) > 1  # some sent small
    assert not set(negatives.PEN_FONTS) & set(negatives.PEN_HELD_OUT)
    x = negatives.for_digits(["pen"], 40, 0)
    assert 36 <= len(x) <= 40 and x.shape[1:] == (28, 28, 1) and x.max() > 0.9
