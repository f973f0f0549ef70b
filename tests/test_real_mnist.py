"""The committed digit model on the real MNIST test set, through the HTTP endpoint (skipped without ../shared)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from tests.support.paths import COMMITTED_MODELS, SHARED_DATA
from tests.support.service import serve

MNIST = SHARED_DATA / "mnist"
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (MNIST / "mnist.npz").exists(), reason="../shared/data/mnist is absent"),
]


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_committed_model_meets_its_target_on_the_test_set() -> None:
    metrics = json.loads((COMMITTED_MODELS / "digit" / "1" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.992 and metrics["train_examples"] == 60_000


@pytest.mark.slow
def test_accuracy_through_http_on_10000_mnist_test_images() -> None:
    with np.load(MNIST / "mnist.npz") as data:
        images, labels = data["x_test"], data["y_test"]
    correct = 0
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        for image, label in zip(images, labels, strict=True):
            response = client.post("/predict/digit", content=png(image), headers={"content-type": "image/png"})
            correct += response.json()["digit"] == label
    accuracy = correct / len(labels)
    print(f"\nMNIST test accuracy through HTTP: {accuracy:.4f} ({correct}/{len(labels)})")
    assert accuracy >= 0.99


def test_sample_pngs_as_files() -> None:
    files = sorted((MNIST / "sample_png_test").glob("*.png"))
    assert files
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        wrong = [
            f.name
            for f in files
            if client.post("/predict/digit", files={"file": (f.name, f.read_bytes(), "image/png")}).json()["digit"]
            != int(f.name.split("_")[0])
        ]
    assert len(wrong) <= 1, wrong


def test_tightly_cropped_digits_are_never_refused_as_blank() -> None:
    """MNIST test digits cropped to their ink (ink touching the border, both polarities): a tight 1 used to be
    refused as "blank" (its border median was ink, so it was inverted and its ink subtracted away)."""
    from app.errors import ServeError
    from app.families.digit.preprocess import preprocess_digit
    from app.families.digit.runtime import DigitRuntime
    from app.manifest import read_manifest

    with np.load(MNIST / "mnist.npz") as data:
        images, labels = data["x_test"][:1500], data["y_test"][:1500]
    entry = read_manifest(COMMITTED_MODELS).served()["digit"]
    runtime = DigitRuntime(entry, COMMITTED_MODELS / entry.path, Settings())
    runtime.load()
    refused, correct = 0, 0
    for image, label in zip(images, labels, strict=True):
        rows, cols = np.flatnonzero(image.max(axis=1) > 40), np.flatnonzero(image.max(axis=0) > 40)
        tight = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        for variant in (tight, 255 - tight):
            try:
                [out] = runtime.predict([preprocess_digit(Image.fromarray(variant))])
            except ServeError:
                refused += 1
                continue
            correct += out.digit == label
    assert refused == 0
    assert correct / (2 * len(labels)) >= 0.985  # 0.990 with their margin
