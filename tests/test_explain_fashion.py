"""POST /explain/image?model=fashion: the committed fashion/1 has no model.keras; its explanation export was read
from model.onnx (training/common/explain_from_onnx.py): the whole network as the numpy head of gradient x input.
It computes the served probabilities, the command rebuilds exactly the committed file, and on Debian's
Fashion-MNIST test set (when installed) it is on the garment and faithful by deletion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.families.explain_images import explainer_for
from app.families.ood import temper
from tests.support.digit_images import render
from tests.support.faithfulness import hide_pixels, loaded, mass_near_ink
from tests.support.paths import COMMITTED_MODELS, ROOT
from tests.support.service import serve
from training.common import explain_from_onnx

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def test_committed_fashion_explains_with_the_served_probabilities() -> None:
    runtime = loaded(COMMITTED_MODELS, "fashion")
    explainer = explainer_for(runtime)
    x = np.random.default_rng(1).uniform(0, 1, (64, 28, 28, 1)).astype(np.float32)
    numpy_probabilities = np.stack([explainer.head.forward(image)[1] for image in x])
    numpy_probabilities = temper(numpy_probabilities, runtime.temperature)  # served confidences are calibrated
    served = np.stack([[s.score for s in sorted(o.top_k, key=lambda s: runtime.labels.index(s.label))]
                       for o in runtime.predict(list(x))])  # fmt: skip
    assert np.abs(np.sort(numpy_probabilities, axis=1)[:, -5:] - np.sort(served, axis=1)).max() < 1e-5
    boot = (ROOT / "examples" / "ankle_boot.jpg").read_bytes()
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        body = client.post("/explain/image?model=fashion", files={"file": ("b.jpg", boot, "image/jpeg")}).json()
    assert body["label"] == "Ankle boot" and body["method"] == "gradient-x-input"
    assert np.array(body["input"]).shape == (28, 28) and np.array(body["heatmap_input"]).max() == 1.0


def test_the_explanation_says_whether_the_image_is_a_garment_as_the_prediction_does() -> None:
    boot = (ROOT / "examples" / "ankle_boot.jpg").read_bytes()
    verdict = ("in_distribution", "ood_score", "ood_reason")
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        for data, expected in ((boot, True), (render(7, "mnist_28"), False)):
            files = {"file": ("x", data, "image/png")}
            predicted = client.post("/predict/image?model=fashion", files=files).json()
            body = client.post("/explain/image?model=fashion", files=files).json()
            assert predicted["in_distribution"] is expected
            assert {k: body[k] for k in verdict} == {k: predicted[k] for k in verdict}


def test_export_from_onnx_rebuilds_the_committed_explain_head(tmp_path: Path) -> None:
    folder = tmp_path / "fashion"
    shutil.copytree(COMMITTED_MODELS / "fashion" / "1", folder)
    (folder / "explain_head.npz").unlink()
    explain_from_onnx.main([str(folder)])  # checks it against model.onnx on 16 random inputs
    assert json.loads((folder / "model.json").read_text())["files"]["explain_head"] == "explain_head.npz"
    with np.load(folder / "explain_head.npz") as new, np.load(COMMITTED_MODELS / "fashion/1/explain_head.npz") as old:
        assert sorted(new.files) == sorted(old.files)
        assert all(np.array_equal(new[key], old[key]) for key in old.files)


@pytest.mark.real_data
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_on_fashion_mnist_hiding_the_top_20_percent_hurts_more_and_the_mass_is_on_the_garment() -> None:
    from training.common.mnist_data import load_mnist

    _, (x_test, _) = load_mnist(FASHION_MNIST)
    x = (x_test[:2000] / 255.0).astype(np.float32)[..., None]
    explainer = explainer_for(loaded(COMMITTED_MODELS, "fashion"))
    top, random, maps = hide_pixels(explainer, x)
    top_ink, random_ink, _ = hide_pixels(explainer, x, among_ink=True)
    on_ink, ink = mass_near_ink(maps, x, reach=0)
    print(f"Fashion-MNIST test[:2000]: probability {top:.3f} (top 20% hidden) vs {random:.3f} (random 20%), among")
    print(f"the bright pixels {top_ink:.3f} vs {random_ink:.3f}; mass {on_ink:.0%} on them ({ink:.0%} of pixels)")
    assert top < random - 0.2 and top_ink < random_ink - 0.08
    assert on_ink > 0.6
