"""Knowing when not to answer (app/families/ood.py): every classifier answer says whether its input looks like the
model's training data (`in_distribution`, `ood_score`, `ood_reason`), `reject_ood` turns a flagged input into a
422 out_of_distribution, and confidences are temperature-scaled; thresholds and temperatures are in the committed
artifacts' model.json (training/calibrate.py) and shown by GET /models."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from app.config import Settings
from app.families.digit.preprocess import preprocess_digit
from app.families.digit.runtime import DigitRuntime
from app.families.ood import Check, Gate, expected_calibration_error, ink_statistics, mahalanobis_fit, temper
from app.families.text_checks import code_share
from app.manifest import read_manifest
from tests.support.digit_images import KINDS, encode, noise_png, render
from tests.support.paths import COMMITTED_MODELS, ROOT, SHARED_DATA
from tests.support.service import assert_error, serve
from training.calibrate import LETTERS, bundled_photos, fit_temperature
from training.common.negatives import crops, has_letters

IMAGE = {"content-type": "image/png"}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def photo(seed: int) -> bytes:
    """A photo-like picture: smooth colour regions and texture, no strokes (what a cat photo is to the model)."""
    rng = np.random.default_rng(seed)
    colours = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    small = colours.resize((320, 240), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 12, (240, 320, 3))
    pixels = np.clip(np.asarray(small, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(1)), "JPEG", quality=85)


def striped(seed: int) -> bytes:
    """Fabric-like stripes filling the frame."""
    rng = np.random.default_rng(seed)
    period = int(rng.integers(6, 14))
    values = (np.sin(np.arange(200) * 2 * np.pi / period)[None, :] * 80 + 128).repeat(200, axis=0)
    return encode(Image.fromarray(np.clip(values + rng.normal(0, 10, values.shape), 0, 255).astype(np.uint8)), "PNG")


DIGITS = [render(digit, kind, seed=digit) for digit, kind in zip(range(10), KINDS, strict=False)]
NOT_DIGITS = [noise_png(48, 1), noise_png(200, 2), photo(3), photo(4), striped(5), striped(6)]


@pytest.fixture(scope="module")
def committed() -> Iterator[httpx.Client]:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS, models=["digit"])) as client:
        yield client


def test_temperature_scaling_from_probabilities_is_softmax_of_scaled_logits() -> None:
    logits = np.random.default_rng(0).normal(0, 4, (50, 10))
    for t in (0.5, 1.0, 1.7, 3.0):
        np.testing.assert_allclose(temper(softmax(logits), t), softmax(logits / t), atol=1e-9)


def test_the_fitted_temperature_is_the_one_that_made_the_labels_and_it_lowers_ece() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 5, (20000, 10))
    truth = softmax(logits / 2.5)  # the labels follow softer probabilities than the model claims: overconfident
    labels = (truth.cumsum(axis=1) > rng.uniform(size=(len(truth), 1))).argmax(axis=1)
    t = fit_temperature(softmax(logits), labels)
    assert t == pytest.approx(2.5, rel=0.05)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(temper(softmax(logits), t), labels)
    assert before > 0.1 and after < 0.02


def test_real_digits_are_in_distribution_and_other_images_are_not(committed: httpx.Client) -> None:
    for data in DIGITS:
        body = committed.post("/predict/digit", content=data, headers=IMAGE).json()
        assert body["in_distribution"] is True, body
        assert 0 <= body["ood_score"] <= 1 and body["ood_reason"] is None
    for data in NOT_DIGITS:
        body = committed.post("/predict/digit", content=data, headers=IMAGE).json()
        assert body["in_distribution"] is False, body
        assert body["ood_score"] > 1 and body["ood_reason"]
        assert body["digit"] in range(10)  # still answered: flagging is information, not a refusal


def test_reject_ood_refuses_a_flagged_image_with_its_score_and_answers_a_digit(committed: httpx.Client) -> None:
    for data in NOT_DIGITS[:3]:
        response = committed.post("/predict/digit?reject_ood=true", content=data, headers=IMAGE)
        error = assert_error(response, 422, "out_of_distribution")
        [flagged] = error["detail"]["flagged"]
        assert flagged["input"] == "file" and flagged["ood_score"] > 1 and flagged["reason"]
    files = {"file": ("d.png", DIGITS[0], "image/png")}
    response = committed.post("/predict/digit", params={"reject_ood": "true"}, files=files)
    assert response.status_code == 200 and response.json()["in_distribution"] is True
    assert committed.post("/predict/digit?reject_ood=false", content=NOT_DIGITS[0], headers=IMAGE).status_code == 200


def in_distribution_share(client: httpx.Client, images: list[np.ndarray]) -> float:
    """The share of the images (uint8 grey arrays, sent as PNG) answered in distribution; none may be refused."""
    answers = [client.post("/predict/digit", content=encode(Image.fromarray(a), "PNG"), headers=IMAGE) for a in images]
    assert [r.status_code for r in answers] == [200] * len(images), [r.json() for r in answers if r.status_code != 200]
    return float(np.mean([r.json()["in_distribution"] for r in answers]))


def test_real_8x8_digits_that_are_not_mnist_are_in_distribution(committed: httpx.Client) -> None:
    """scikit-learn's 8x8 handwritten digits (UCI), sent at 8x8: enlarged by the preprocessing, they are as smooth
    as a photo shrunk into the box (89% were flagged before the tiny-digit group and the enlargement statistics)."""
    from sklearn.datasets import load_digits

    images = [(a * 255 / 16).astype(np.uint8) for a in load_digits().images[::18]]  # 100 of 1,797
    assert in_distribution_share(committed, images) >= 0.9


@pytest.mark.real_data
def test_mnist_digits_sent_at_16x16_or_cropped_to_their_ink_are_in_distribution(committed: httpx.Client) -> None:
    path = SHARED_DATA / "mnist" / "mnist.npz"
    if not path.exists():
        pytest.skip(f"no {path}")
    digits = np.load(path)["x_test"][-200:]
    small = [np.asarray(Image.fromarray(a).resize((16, 16), Image.Resampling.BOX)) for a in digits]
    assert in_distribution_share(committed, small) >= 0.95
    tight = [a[np.ix_(a.max(axis=1) > 0, a.max(axis=0) > 0)] for a in digits]  # the ink touches every side
    assert in_distribution_share(committed, tight) >= 0.9


# Matplotlib's DejaVu (every machine with matplotlib has it): a family the digit model's negatives never used (its
# Display faces draw no letters)
LETTER_FONTS = [
    p for p in sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("DejaVu*.ttf")) if has_letters(p)
]


def printed(text: str, font: Path, size: int, dark_on_light: bool = True) -> bytes:
    face = ImageFont.truetype(str(font), size)
    image = Image.new("L", (2 * size, 2 * size), 255 if dark_on_light else 0)
    ImageDraw.Draw(image).text((size // 2, size // 4), text, font=face, fill=0 if dark_on_light else 255)
    return encode(image, "PNG")


@pytest.mark.skipif(not LETTER_FONTS, reason="no matplotlib DejaVu fonts")
def test_printed_letters_in_a_font_never_trained_on_are_flagged(committed: httpx.Client) -> None:
    """Printed letters that are not digit shapes, in DejaVu (held out of the outlier-exposure negatives), sent as
    people send them: the digit model answers them with a low confidence (58% were flagged by digit v1)."""
    images = [
        printed(letter, LETTER_FONTS[i % len(LETTER_FONTS)], (40, 64, 96)[i % 3], dark_on_light=i % 4 != 0)
        for i, letter in enumerate(LETTERS * 3)
    ]
    answers = [committed.post("/predict/digit", content=data, headers=IMAGE).json() for data in images]
    assert np.mean([a["in_distribution"] is False for a in answers]) >= 0.85
    assert all(a["digit"] in range(10) for a in answers)  # still answered, with its ten probabilities


def test_models_shows_thresholds_and_ece_before_and_after(committed: httpx.Client) -> None:
    metrics = committed.get("/models/digit").json()["metrics"]
    checks = metrics["ood"]["checks"]
    assert set(checks) == {"ink", "confidence", "features"} and all(c["threshold"] > 0 for c in checks.values())
    rates = metrics["ood"]["flag_rates"]
    assert rates["MNIST test"]["flagged"] <= 0.02
    calibration = metrics["calibration"]
    assert calibration["temperature"] > 0 and calibration["ece_after"] <= 0.02
    assert "ece_before" in calibration


def test_served_probabilities_are_the_calibrated_ones(committed: httpx.Client) -> None:
    entry = read_manifest(COMMITTED_MODELS).served()["digit"]
    raw = DigitRuntime(entry.model_copy(update={"metrics": {}}), COMMITTED_MODELS / entry.path, Settings())
    raw.load()
    x = raw.prepare(Image.open(io.BytesIO(DIGITS[3])))
    [plain] = raw.predict([x])
    assert plain.in_distribution is None and plain.ood_score is None  # no thresholds: not checked, said so
    body = committed.post("/predict/digit", content=DIGITS[3], headers=IMAGE).json()
    t = entry.metrics["calibration"]["temperature"]
    expected = temper(np.array([plain.probabilities]), t)[0]
    np.testing.assert_allclose(body["probabilities"], expected, rtol=1e-4, atol=1e-6)


def test_the_open_inference_protocol_answers_in_distribution_and_ood_score(committed: httpx.Client) -> None:
    outputs = {o["name"] for o in committed.get("/v2/models/digit").json()["outputs"]}
    assert {"in_distribution", "ood_score"} <= outputs
    images = [base64.b64encode(d).decode() for d in (DIGITS[1], NOT_DIGITS[2])]
    body = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [2],
                "data": images,
                "parameters": {"content_type": "base64"},
            }
        ]
    }
    answer = committed.post("/v2/models/digit/infer", json=body).json()
    got = {o["name"]: o["data"] for o in answer["outputs"]}
    assert got["in_distribution"] == [True, False]
    assert got["ood_score"][0] <= 1 < got["ood_score"][1]


def test_a_check_scores_the_mahalanobis_distance_from_its_nearest_group() -> None:
    rng = np.random.default_rng(2)
    values, groups = rng.normal(size=(300, 4)) * [1, 2, 3, 4], np.repeat([0, 1, 2], 100)
    values[groups == 1] += 10
    spec = mahalanobis_fit(values, groups, ridge=0.5)
    check = Check.of("x", {**spec, "threshold": 1.0, "reason": ""})
    probe = rng.normal(size=(7, 4)) * 5
    precisions = [np.linalg.inv(np.cov(values[groups == g].T) + 0.5 * np.eye(4)) for g in range(3)]
    means = np.array(spec["means"])
    expected = [min(float((v - m) @ p @ (v - m)) for m, p in zip(means, precisions, strict=True)) for v in probe]
    np.testing.assert_allclose(check.score(probe), expected, rtol=1e-9)


def test_an_image_enlarged_from_a_tiny_one_is_told_from_a_shrunk_photo() -> None:
    """The two statistics ink_statistics(enlarged=True) adds: an 8x8 digit the preprocessing enlarged is linear
    between its pixels (second differences small for its edges, many exactly zero); a photo shrunk into the same
    box is not."""
    from sklearn.datasets import load_digits

    tiny = [preprocess_digit(Image.fromarray((a * 255 / 16).astype(np.uint8))) for a in load_digits().images[:5]]
    shrunk = [preprocess_digit(Image.open(io.BytesIO(photo(seed)))) for seed in range(5)]
    stats = ink_statistics(np.stack(tiny + shrunk), enlarged=True)
    assert stats.shape == (10, 7)
    np.testing.assert_array_equal(stats[:, :5], ink_statistics(np.stack(tiny + shrunk)))
    bends, flat = stats[:, 5], stats[:, 6]
    assert bends[:5].max() < 1.2 < bends[5:].min()
    assert flat[:5].min() > 0.2 > 0.01 > flat[5:].max()


def test_an_unmeasurable_score_is_flagged() -> None:
    gate = Gate.from_metrics({"ood": {"checks": {"confidence": {"threshold": 0.5, "reason": "unsure"}}}})
    assert gate is not None
    [ok, nan] = gate.verdicts({"confidence": np.array([0.2, np.nan])})
    assert ok.in_distribution is True and ok.ood_score == pytest.approx(0.4)
    assert nan.in_distribution is False and nan.ood_reason == "unsure" and nan.ood_score is None
    checks = {name: {"threshold": 1, "reason": name} for name in "ab"}
    two = Gate.from_metrics({"ood": {"checks": checks}})
    assert two is not None
    [first, second] = two.verdicts({"a": np.array([0.5, np.nan]), "b": np.array([np.nan, 3.0])})
    assert first.in_distribution is False and first.ood_reason == "b"  # a NaN anywhere flags, whatever the order
    assert second.in_distribution is False


BOOT = (ROOT / "examples" / "ankle_boot.jpg").read_bytes()


@pytest.fixture(scope="module")
def fashion() -> Iterator[httpx.Client]:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS, models=["fashion"])) as client:
        yield client


def test_fashion_flags_digits_however_they_are_drawn(fashion: httpx.Client) -> None:
    """Handwritten-like digits in every way the digit tests send them (MNIST-like, on paper, blue ink, a noisy
    photo, a large canvas, thin strokes, 16-bit, a palette GIF, a TIFF): not garments, so flagged (or refused, as
    light strokes on a transparent background are: blank once on white). The committed fashion v3 learnt MNIST
    training digits as negatives (outlier exposure); these are drawn by tests/support, not MNIST. v2: 78%."""
    url = "/predict/image?model=fashion"
    answers = [fashion.post(url, content=render(d, kind, seed=d), headers=IMAGE) for d in range(10) for kind in KINDS]
    flagged = [a.status_code == 422 or a.json()["in_distribution"] is False for a in answers]
    assert len(answers) == 10 * len(KINDS) and np.mean(flagged) >= 0.9, np.mean(flagged)


def test_a_garment_is_in_distribution_for_fashion_and_digits_and_noise_are_not(fashion: httpx.Client) -> None:
    url = "/predict/image?model=fashion"
    body = fashion.post(url, files={"file": ("boot.jpg", BOOT, "image/jpeg")}).json()
    assert body["label"] == "Ankle boot" and body["in_distribution"] is True and body["ood_score"] <= 1
    for data in [render(7, "mnist_28"), render(4, "black_on_white"), noise_png(64, 3), noise_png(150, 4)]:
        body = fashion.post(url, content=data, headers=IMAGE).json()
        assert body["in_distribution"] is False and body["ood_score"] > 1 and body["ood_reason"], body
        refused = fashion.post(url + "&reject_ood=true", content=data, headers=IMAGE)
        error = assert_error(refused, 422, "out_of_distribution")
        assert error["detail"]["flagged"][0]["ood_score"] > 1
    assert fashion.post(url + "&reject_ood=true", files={"file": ("b.jpg", BOOT, "image/jpeg")}).status_code == 200
    metrics = fashion.get("/models/fashion").json()["metrics"]
    assert set(metrics["ood"]["checks"]) == {"ink", "confidence", "shape"}
    assert metrics["calibration"]["ece_after"] < metrics["calibration"]["ece_before"]
    outputs = {o["name"] for o in fashion.get("/v2/models/fashion").json()["outputs"]}
    assert {"in_distribution", "ood_score"} <= outputs


def test_fashion_flags_photos_of_other_things_no_negative_came_from(fashion: httpx.Client) -> None:
    """Photos every machine has (scikit-learn's temple and flower, matplotlib's portrait), whole and cropped at many
    scales as the negatives are: no negative photo came from them, nor from anything like a temple. The committed
    v3 flags 78% of these 150 (a candidate fine-tuned on wallpapers too: 83%); the issue's goal is 90%."""
    images = crops(bundled_photos(), 150, np.random.default_rng(0))
    url = "/predict/image?model=fashion"
    answers = [fashion.post(url, content=encode(image, "PNG"), headers=IMAGE) for image in images]
    flagged = [a.status_code == 422 or a.json()["in_distribution"] is False for a in answers]
    assert len(flagged) == 150 and np.mean(flagged) >= 0.7, np.mean(flagged)


def test_calibrate_measures_the_unseen_photo_sources_this_machine_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wallpapers directly in /usr/share/backgrounds (Debian's lomiri and ukui packages) are measured when
    installed, photos ("_by_" their author) apart from the rest; scikit-learn's and matplotlib's always."""
    from training import calibrate

    monkeypatch.setattr(calibrate, "BACKGROUNDS", tmp_path)
    [bundled] = calibrate.unseen_photos(np.random.default_rng(0))
    assert "scikit-learn" in bundled
    Image.new("RGB", (640, 480), (200, 0, 0)).save(tmp_path / "Bridge_by_Someone.png")
    Image.new("RGB", (640, 480), (0, 0, 200)).save(tmp_path / "city.png")
    sets = calibrate.unseen_photos(np.random.default_rng(0))
    assert len(sets) == 3 and all(len(images) == calibrate.UNSEEN_CROPS for images in sets.values())
    photos, wallpapers = (images for name, images in sets.items() if name != bundled)
    assert {image.getpixel((0, 0)) for image in photos} == {(200, 0, 0)}
    assert {image.getpixel((0, 0)) for image in wallpapers} == {(0, 0, 200)}


# Code that is mostly English words and little punctuation (comments, imports): the language and symbols checks
# passed such snippets (17% of the Python snippets training/calibrate.py measures); the code check flags them
CODE = [
    "import numpy as np\nfrom numpy.ma.core import MaskedArrayFutureWarning\n"
    "from numpy.ma.testutils import assert_equal",
    "    # Ensure that large integers are inserted in little-endian fashion to avoid\n    # trailing 0s.\n"
    "    ss0 = SeedSequence(42)",
    "def get_build_architecture():\n    # Importing distutils.msvccompiler triggers a warning on non-Windows\n"
    "    # systems, so delay the import to here.",
]
REVIEWS = [
    "A moving, beautifully shot film.",
    "it 's a charming and often affecting journey .",
    "Not bad at all.",
    "The plot was dull and the acting worse; I left halfway through.",
]
NOT_REVIEWS = [
    "asdf qwerty zxcv",
    "Le film était très beau et les acteurs sont formidables.",
    "Die Schauspieler waren schrecklich, und die Geschichte ergab überhaupt keinen Sinn.",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "def f(x):\n    return {k: v for k, v in x.items() if v}",
    "Фильм был очень хороший.",
]


@pytest.fixture(scope="module")
def sentiment() -> Iterator[httpx.Client]:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS, models=["lstm"])) as client:
        yield client


def test_english_reviews_are_in_distribution_and_other_text_is_not(sentiment: httpx.Client) -> None:
    body = sentiment.post("/predict/sentiment", json={"texts": REVIEWS + NOT_REVIEWS, "model": "lstm"}).json()
    verdicts = [r["in_distribution"] for r in body["results"]]
    assert verdicts == [True] * len(REVIEWS) + [False] * len(NOT_REVIEWS), body["results"]
    assert all(r["ood_score"] > 1 and r["ood_reason"] for r in body["results"][len(REVIEWS) :])
    refused = sentiment.post("/predict/sentiment", json={"texts": REVIEWS + NOT_REVIEWS[:2], "reject_ood": True})
    error = assert_error(refused, 422, "out_of_distribution")
    assert [f["input"] for f in error["detail"]["flagged"]] == [f"texts[{len(REVIEWS)}]", f"texts[{len(REVIEWS) + 1}]"]
    assert sentiment.post("/predict/sentiment", json={"texts": REVIEWS, "reject_ood": True}).status_code == 200
    metrics = sentiment.get("/models/lstm").json()["metrics"]
    assert set(metrics["ood"]["checks"]) == {"language", "symbols", "code"} and "ece_after" in metrics["calibration"]
    outputs = {o["name"] for o in sentiment.get("/v2/models/lstm").json()["outputs"]}
    assert {"in_distribution", "ood_score"} <= outputs


def test_code_made_of_english_words_is_flagged_by_the_code_check(sentiment: httpx.Client) -> None:
    body = sentiment.post("/predict/sentiment", json={"texts": CODE, "model": "lstm"}).json()
    code = sentiment.get("/models/lstm").json()["metrics"]["ood"]["checks"]["code"]
    for result in body["results"]:
        assert result["in_distribution"] is False and result["ood_reason"] == code["reason"], result
    refused = sentiment.post("/predict/sentiment", json={"texts": CODE[:1], "reject_ood": True})
    assert assert_error(refused, 422, "out_of_distribution")["detail"]["flagged"][0]["input"] == "texts[0]"


def test_what_looks_like_code_is_counted_line_by_line() -> None:
    assert code_share("  a great film, full of heart") == 0.0  # spaces before one line are not indentation
    assert code_share("The hero's arc -- e.g. in Act II -- works.\nA must see.") == 0.0
    assert code_share("Great film.\n    x = compute_total(items)\n# TODO") == pytest.approx(2 / 3)
    assert code_share("") == 0.0


def test_served_sentiment_scores_are_the_platt_scaled_ones(sentiment: httpx.Client) -> None:
    from app.families import FAMILIES
    from app.families.sentiment import temper_binary

    entry = read_manifest(COMMITTED_MODELS).served()["lstm"]
    calibration = entry.metrics["calibration"]
    assert calibration["bias"] != 0 and calibration["ece_after"] <= 0.02
    bare = entry.model_copy(update={"metrics": {}})
    raw = FAMILIES["lstm"].runtime(bare, COMMITTED_MODELS / entry.path, Settings())
    raw.load()
    plain = np.array([r.score for r in raw.predict(REVIEWS)])
    body = sentiment.post("/predict/sentiment", json={"texts": REVIEWS, "model": "lstm"}).json()
    expected = temper_binary(plain, calibration["temperature"], calibration["bias"])
    np.testing.assert_allclose([r["score"] for r in body["results"]], expected, rtol=1e-4, atol=1e-6)


def test_sentiment_scores_are_temperature_scaled() -> None:
    from app.families.sentiment import temper_binary

    p = np.array([0.1, 0.5, 0.8, 0.99])
    np.testing.assert_allclose(temper_binary(p, 2.0), temper(np.stack([1 - p, p], axis=1), 2.0)[:, 1])
    assert temper_binary(p, 1.0) is p
    logits = np.log(p / (1 - p))  # with a bias: Platt scaling, sigmoid(logit / t + bias)
    np.testing.assert_allclose(temper_binary(p, 2.0, 0.3), 1 / (1 + np.exp(-(logits / 2.0 + 0.3))))
    np.testing.assert_allclose(temper_binary(p, 1.0, -0.5), 1 / (1 + np.exp(-(logits - 0.5))))


def test_the_other_languages_set_leaves_out_what_translations_left_in_english(monkeypatch) -> None:
    """Translated manual pages keep some passages in English: a sentence half of whose runs of four words are in
    the English pages is not "another language" and is not measured as one."""
    from training import calibrate

    english = "The user may change their password at any time of the day."
    pages = {
        "/usr/share/man/man1": [english],
        "/usr/share/man/it/man1": [english, "L'utente può cambiare la sua password in qualsiasi momento."],
    }
    monkeypatch.setattr(calibrate, "LANGUAGES", ["it"])
    monkeypatch.setattr(calibrate, "man_sentences", lambda folder: pages[folder])
    assert calibrate.other_languages(40, np.random.default_rng(0)) == [pages["/usr/share/man/it/man1"][1]]


def test_digit_thresholds_rise_together_until_the_checks_flag_the_target_share() -> None:
    """Two checks whose outliers are different inputs: at the 0.99 quantile each flags 1% and together 2%, so the
    common quantile rises until together they flag at most 1.5%; checks that flag the same inputs keep 0.99."""
    from training.calibrate import together

    a, b = np.zeros(10_000), np.zeros(10_000)
    a[:200] = np.linspace(2, 3, 200)
    b[-200:] = np.linspace(2, 3, 200)  # other inputs
    q = together({"a": a, "b": b}, 0.99, 0.015)
    assert q == 0.9925  # each flags 0.75%
    flagged = (a > np.quantile(a, q)) | (b > np.quantile(b, q))
    assert flagged.mean() <= 0.015 < ((a > np.quantile(a, 0.99)) | (b > np.quantile(b, 0.99))).mean()
    assert together({"a": a, "b": a.copy()}, 0.99, 0.015) == 0.99
