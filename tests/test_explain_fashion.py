"""The explanation export built from an ONNX-only artifact (the committed fashion/1 has no model.keras): same
probabilities as model.onnx, and /explain/image answers.

Measured, not asserted: on Debian's Fashion-MNIST test[:1000], hiding the 20% most-attributed pixels leaves the
predicted class 0.797 vs 0.680 for random 20% (0.825 vs 0.668 restricted to the garment's pixels): this 7x7
Grad-CAM is not faithful by the deletion test, unlike the digit's 11x11 (test_explain_digit.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.families.explain_images import explainer_for
from tests.support.faithfulness import loaded
from tests.support.paths import COMMITTED_MODELS, ROOT
from tests.support.service import serve
from training.common import explain_from_onnx


@pytest.fixture(scope="module")
def fashion_with_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("models")
    shutil.copytree(COMMITTED_MODELS / "fashion", models / "fashion")
    explain_from_onnx.main([str(models / "fashion" / "1")])  # checks it against model.onnx on 16 random inputs
    return models


def test_export_from_onnx_gives_the_served_probabilities_and_an_explanation(fashion_with_export: Path) -> None:
    runtime = loaded(fashion_with_export, "fashion")
    x = np.random.default_rng(1).uniform(0, 1, (64, 28, 28, 1)).astype(np.float32)
    probabilities, _, maps = explainer_for(runtime).heatmaps(x, [None] * len(x))
    served = np.stack([[s.score for s in sorted(o.top_k, key=lambda s: runtime.labels.index(s.label))]
                       for o in runtime.predict(list(x))])  # fmt: skip
    assert np.abs(np.sort(probabilities, axis=1)[:, -5:] - np.sort(served, axis=1)).max() < 1e-5
    assert maps.shape == (64, 28, 28) and maps.max() <= 1.0
    boot = (ROOT / "examples" / "ankle_boot.jpg").read_bytes()
    with serve("asgi", Settings(models_dir=fashion_with_export)) as client:
        body = client.post("/explain/image?model=fashion", files={"file": ("b.jpg", boot, "image/jpeg")}).json()
    assert body["label"] == "Ankle boot" and np.array(body["input"]).shape == (28, 28)
