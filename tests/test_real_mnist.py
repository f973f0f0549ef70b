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
