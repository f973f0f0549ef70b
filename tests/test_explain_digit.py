"""POST /explain/digit: gradient x input through the whole network in numpy (the artifact's explain_head.npz),
checked for exactness (gradient and probabilities), mapped onto the caller's image, on the ink, and faithful
(hiding the most-attributed pixels hurts more than hiding random ones, also among the ink pixels only) on the
session's trained model and on real MNIST when it is there."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from app.families.digit.preprocess import preprocess_digit
from app.families.explain_images import DigitExplainer, explainer_for
from app.families.ood import temper
from tests.support.digit_images import encode, noise_png, sklearn_digits_28
from tests.support.faithfulness import hide_pixels, loaded, mass_near_ink
from tests.support.paths import COMMITTED_MODELS, ROOT, SHARED_DATA
from tests.support.service import assert_error, serve

MNIST = SHARED_DATA / "mnist" / "mnist.npz"
DIGIT_PNG = (ROOT / "examples" / "digit.png").read_bytes()


def post(client, data: bytes, query: str = ""):
    return client.post(f"/explain/digit{query}", files={"file": ("d.png", data, "image/png")})


def test_explanation_names_the_same_digit_as_the_prediction_and_maps_onto_the_image() -> None:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        predicted = client.post("/predict/digit", files={"file": ("d.png", DIGIT_PNG, "image/png")}).json()
        body = post(client, DIGIT_PNG).json()
    assert body["digit"] == predicted["digit"] and body["target"] == str(predicted["digit"])
    assert np.allclose(body["probabilities"], predicted["probabilities"], atol=1e-6)
    image = Image.open(io.BytesIO(DIGIT_PNG))
    heat = np.array(body["heatmap"])
    assert heat.shape == (round(image.height * 64 / max(image.size)), round(image.width * 64 / max(image.size)))
    assert heat.max() == pytest.approx(1.0, abs=0.05) and heat.min() >= 0
    assert np.array(body["heatmap_input"]).shape == (28, 28)
    seen = preprocess_digit(image.copy())[..., 0]
    assert np.allclose(np.array(body["input"]), seen, atol=1e-4)
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert overlay.format == "PNG" and max(overlay.size) == min(256, max(image.size))
    assert body["method"] == "gradient-x-input" and body["layer"] == "input" and body["model"] == predicted["model"]


def test_the_explanation_says_whether_the_image_is_a_digit_as_the_prediction_does() -> None:
    """The playground draws its "not a digit?" badge from the explanation: its verdict is /predict/digit's."""
    verdict = ("in_distribution", "ood_score", "ood_reason")
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        for data, expected in ((DIGIT_PNG, True), (noise_png(48, 1), False)):
            predicted = client.post("/predict/digit", files={"file": ("d.png", data, "image/png")}).json()
            body = post(client, data).json()
            assert predicted["in_distribution"] is expected
            assert {k: body[k] for k in verdict} == {k: predicted[k] for k in verdict}


def test_target_explains_another_class_and_an_unknown_one_is_422() -> None:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        own = post(client, DIGIT_PNG).json()
        other = str((own["digit"] + 3) % 10)
        body = post(client, DIGIT_PNG, f"?target={other}").json()
        bad = post(client, DIGIT_PNG, "?target=eleven")
    assert body["target"] == other and body["digit"] == own["digit"]
    assert body["target_score"] == pytest.approx(own["probabilities"][int(other)], abs=1e-6)
    assert body["heatmap_input"] != own["heatmap_input"]
    assert_error(bad, 422, "invalid_input")


def test_bad_images_get_the_prediction_errors() -> None:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        assert_error(post(client, b"\x89PNG junk"), 400, "invalid_image")
        assert_error(post(client, encode(Image.new("L", (64, 64), 255), "PNG")), 422, "invalid_input")


def test_explanations_have_their_own_concurrency_budget() -> None:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS, max_concurrent_explanations=1)) as client:
        client.app.state.explain_limiter.in_flight = 1  # one explanation is running
        try:
            refused = post(client, DIGIT_PNG)
            predicted = client.post("/predict/digit", files={"file": ("d.png", DIGIT_PNG, "image/png")})
        finally:
            client.app.state.explain_limiter.in_flight = 0
    assert_error(refused, 429, "overloaded")
    assert predicted.status_code == 200


def test_committed_explain_head_computes_the_served_probabilities() -> None:
    runtime = loaded(COMMITTED_MODELS, "digit")
    explainer = explainer_for(runtime, DigitExplainer)
    x, _ = sklearn_digits_28()
    x = (x[:300] / 255.0).astype(np.float32)[..., None]
    numpy_probabilities = np.stack([explainer.head.forward(image)[1] for image in x])
    numpy_probabilities = temper(numpy_probabilities, runtime.temperature)  # served confidences are calibrated
    served = np.stack([np.array(o.probabilities) for o in runtime.predict(list(x))])
    assert np.abs(numpy_probabilities - served).max() < 1e-5


def test_numpy_head_gradient_matches_finite_differences(trained_models_dir: Path) -> None:
    explainer = explainer_for(loaded(trained_models_dir, "digit"), DigitExplainer)
    x, _ = sklearn_digits_28()
    rng = np.random.default_rng(0)
    images = (x[:4] / 255.0)[..., None]
    # Background pixels are equal (a max-pooling tie splits the change, where the gradient, like TensorFlow's,
    # goes to the first maximum): a little noise makes every point differentiable.
    for a in images + rng.uniform(0, 0.1, images.shape):
        logits, _ = explainer.head.forward(a)
        target = int(logits.argmax())
        saved: list[dict] = []
        explainer.head.forward(a, saved)
        g = np.zeros_like(logits)
        g[target] = 1
        for layer, state in zip(reversed(explainer.head.layers), reversed(saved), strict=True):
            g = layer.backward(g, state)
        direction = rng.normal(size=a.shape)
        eps = 1e-7
        up, down = explainer.head.forward(a + eps * direction)[0], explainer.head.forward(a - eps * direction)[0]
        numeric = (up[target] - down[target]) / (2 * eps)
        assert float((g * direction).sum()) == pytest.approx(float(numeric), rel=1e-4, abs=1e-6)


def faithfulness(models_dir: Path, x: np.ndarray) -> tuple[float, float, np.ndarray]:
    return hide_pixels(explainer_for(loaded(models_dir, "digit"), DigitExplainer), x)


def test_hiding_the_most_attributed_pixels_hurts_more_than_random_on_the_session_model(
    trained_models_dir: Path,
) -> None:
    x, _ = sklearn_digits_28()
    x = (x[1500:] / 255.0).astype(np.float32)[..., None]  # the 297 digits it was not trained on
    top, random, maps = faithfulness(trained_models_dir, x)
    print(
        f"session model, {len(x)} digits: predicted class probability {top:.3f} (top 20% hidden), {random:.3f} (random)"
    )
    assert top < random - 0.2
    on_ink, ink = mass_near_ink(maps, x, reach=0)
    assert on_ink > 0.5 and on_ink > 3 * ink


@pytest.mark.real_data
@pytest.mark.skipif(not MNIST.exists(), reason="../shared/data/mnist is absent")
def test_on_real_mnist_hiding_the_top_20_percent_hurts_far_more_and_the_mass_is_on_the_ink() -> None:
    with np.load(MNIST) as data:
        x = (data["x_test"][:2000] / 255.0).astype(np.float32)[..., None]
    explainer = explainer_for(loaded(COMMITTED_MODELS, "digit"), DigitExplainer)
    top, random, maps = hide_pixels(explainer, x)
    top_ink, random_ink, _ = hide_pixels(explainer, x, among_ink=True)
    on_ink, ink = mass_near_ink(maps, x, reach=0)
    near, area = mass_near_ink(maps, x, reach=1)
    print(f"MNIST test[:2000]: probability {top:.3f} (top 20% hidden) vs {random:.3f} (random 20%), among the ink")
    print(f"{top_ink:.3f} vs {random_ink:.3f}; heatmap mass {on_ink:.0%} on the ink ({ink:.0%} of pixels), {near:.0%}")
    print(f"within 1 px of it ({area:.0%} of pixels)")
    assert top < random - 0.5 and top_ink < random_ink - 0.2
    assert on_ink > 0.8 and near > 0.95
