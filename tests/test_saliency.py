"""The numpy head behind the image explanations (app/families/saliency.py): its gradient is exact through every
layer kind it runs (finite differences), each method's map is what its definition says, and the ONNX reader
refuses a graph it does not understand."""

from __future__ import annotations

import numpy as np
import pytest

from app.families.saliency import GRAD_CAM, GRADIENT_X_INPUT, Head, Layer
from tests.support.paths import COMMITTED_MODELS
from training.common import explain_from_onnx


def random_head(method: str, pooled: str) -> Head:
    """conv (same) -> batch norm -> ReLU -> max pool -> conv (valid, ReLU) -> GAP or flatten -> dense -> softmax."""
    rng = np.random.default_rng(3)
    last = 3 * 3 * 5 if pooled == "flatten" else 5
    layers = [
        Layer("conv", {"padding": "same"}, {"kernel": rng.normal(size=(3, 3, 2, 4)), "bias": rng.normal(size=4)}),
        Layer("affine", {}, {"scale": rng.uniform(0.5, 2, 4), "offset": rng.normal(size=4)}),
        Layer("relu", {}, {}),
        Layer("maxpool", {"size": [2, 2]}, {}),
        Layer("conv", {"padding": "valid", "activation": "relu"}, {"kernel": rng.normal(size=(2, 2, 4, 5))}),
        Layer(pooled, {}, {}),
        Layer("dense", {"activation": "softmax"}, {"kernel": rng.normal(size=(last, 3)), "bias": rng.normal(size=3)}),
    ]
    return Head(layers, [1.0, 1.0], [0.0, 0.0], "input", method)


@pytest.mark.parametrize("pooled", ["gap", "flatten"])
def test_gradient_matches_finite_differences_through_every_layer_kind(pooled: str) -> None:
    head = random_head(GRADIENT_X_INPUT, pooled)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (8, 8, 2))  # float64, no ties in the pooling
    logits, _ = head.forward(x)
    for target in range(3):
        direction = rng.normal(size=x.shape)
        eps = 1e-6
        numeric = (head.forward(x + eps * direction)[0][target] - head.forward(x - eps * direction)[0][target]) / (
            2 * eps
        )
        assert float((head.gradient(x, target) * direction).sum()) == pytest.approx(float(numeric), rel=1e-5)


def test_each_method_computes_its_definition() -> None:
    x = np.random.default_rng(5).uniform(0, 1, (8, 8, 2))
    for method in (GRADIENT_X_INPUT, GRAD_CAM):
        head = random_head(method, "gap")
        g = head.gradient(x, 1)
        weights = g.mean(axis=(0, 1)) if method == GRAD_CAM else g
        expected = np.maximum((x * weights).sum(axis=-1), 0)
        assert np.allclose(head.saliency(x, 1), expected, atol=1e-6)
        assert head.saliency(x, 1).shape == (8, 8) and head.saliency(x, 1).min() >= 0
    with pytest.raises(ValueError, match="unknown saliency method"):
        Head([], [1.0], [0.0], method="occlusion")


def test_onnx_reader_refuses_a_graph_that_is_not_a_plain_cnn() -> None:
    import onnx

    [lstm] = (COMMITTED_MODELS / "lstm").glob("*/model.onnx")
    with pytest.raises(ValueError):
        explain_from_onnx.head_from_onnx(onnx.load(str(lstm)))
