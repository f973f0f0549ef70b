"""Calibrate a served classifier after training: its temperature and its out-of-distribution thresholds, written
into the artifact's model.json (metrics["calibration"], metrics["ood"]; app/families/ood.py reads them).

    python -m training.calibrate digit       # MNIST test (../shared/data/mnist/mnist.npz)
    python -m training.calibrate fashion     # Fashion-MNIST test (/usr/share/datasets/fashion-mnist)

Only held-out in-distribution data sets a number: the test split is cut in two halves by a fixed seed; the
temperature (minimum negative log-likelihood) and the thresholds (each check's 99.5th percentile, so about 1% of
in-distribution inputs are flagged) come from the first, ECE and flag rates are reported on the second. The
statistics' mean and covariance come from training images. Out-of-distribution sets (other kinds of image, built
here with a fixed seed) are only measured, never tuned on: their flag rates are stored beside the thresholds.
Every input goes through the runtime's own preprocessing and model, as a request does.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.config import Settings
from app.errors import ServeError
from app.families import FAMILIES
from app.families.digit.runtime import DigitRuntime, digit_measures
from app.families.ood import (
    Gate,
    Subspaces,
    expected_calibration_error,
    ink_statistics,
    mahalanobis_fit,
    store_checks,
    temper,
)
from app.manifest import read_manifest
from training.common import clothing_photos, negatives
from training.common.restyle import FASHION_STYLES, STYLES, restyled

QUANTILE = 0.99  # each check's threshold: two checks at 1% each flag 1-2% of in-distribution inputs
FEATURE_RIDGE = 0.1  # added to the features' class covariances (a feature a class never uses still counts)
DIGIT_QUANTILE = 0.993  # three checks (ink, confidence, features): at 0.99 each they flagged 2.1% of MNIST test
# ... and the least quantile (at least DIGIT_QUANTILE, one for all checks) at which the checks together flag at most
# this share of the inputs the thresholds are set on: how much the checks overlap differs from model to model
DIGIT_FLAG_TARGET = 0.015
SEED = 0
DATA = Path("../shared/data")
FASHION = Path("/usr/share/datasets/fashion-mnist")
FONTS = "/usr/share/fonts/truetype/*/*.ttf"  # the fashion model's letters: DejaVu and Liberation (fonts-*-core)
FIRST_FONTS = ("dejavu", "liberation")
LETTERS = negatives.LETTERS  # letters that are not also digit shapes (O, I, l, S, Z, b, g, ...)
DIGIT_LIKE = "OoIlSsZzbgqi"  # letters that are also digit shapes: a printed "O" may be a zero
# Matplotlib's own fonts, on every machine that has matplotlib; the negatives never use them (Computer Modern's
# text faces only: cmex10, cmsy10 and cmmi10 map letters to symbols)
MATPLOTLIB_FONTS = ("STIXGeneral*.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf")


RELIABILITY_FILE = "reliability.png"


def reliability_diagram(path: Path, before: np.ndarray, after: np.ndarray, labels: np.ndarray, title: str) -> None:
    """Accuracy against confidence in 15 bins, before and after temperature scaling (the diagonal is calibrated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0, 1, 16)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for probabilities, name in ((before, "before"), (after, "after")):
        confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
        bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, 14)
        shown = [b for b in range(15) if (bins == b).any()]
        ece = expected_calibration_error(probabilities, labels)
        ax.plot(
            [confidence[bins == b].mean() for b in shown],
            [correct[bins == b].mean() for b in shown],
            marker="o",
            label=f"{name} (ECE {ece:.4f})",
        )
    ax.set(xlabel="confidence", ylabel="accuracy", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood (a grid, then a finer grid around its best)."""

    def nll(t: float) -> float:
        p = temper(probabilities.astype(np.float64), t)
        return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None)).mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=nll)
    fine = np.linspace(best / 1.06, best * 1.06, 25)
    return round(float(min(fine, key=nll)), 4)


def fit_platt(positive: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float]:
    """The temperature and bias of sigmoid(logit / t + bias) that minimise the negative log-likelihood of a binary
    classifier's P(positive), from temperature `t` and no bias (a model that leans to one class needs the bias:
    lstm v2's ECE 0.021 with a temperature alone, 0.019 with both)."""
    from scipy.optimize import minimize

    from app.families.sentiment import temper_binary

    def nll(w: np.ndarray) -> float:
        q = np.clip(temper_binary(positive, float(np.exp(w[0])), float(w[1])), 1e-12, 1 - 1e-12)
        return float(-np.mean(np.where(labels == 1, np.log(q), np.log(1 - q))))

    best = minimize(nll, np.array([np.log(t), 0.0]), method="Nelder-Mead").x
    return round(float(np.exp(best[0])), 4), round(float(best[1]), 4)


class Raw:
    """The served artifact's runtime without its calibration: the raw probabilities and prepared inputs."""

    def __init__(self, name: str, models_dir: Path) -> None:
        entry = read_manifest(models_dir).served()[name]
        self.entry = entry
        self.folder = models_dir / entry.path
        bare = entry.model_copy(update={"metrics": {k: v for k, v in entry.metrics.items() if k not in KEYS}})
        self.runtime: Any = FAMILIES[name].runtime(bare, self.folder, Settings())
        self.runtime.load()
        self.onnx_with_features: bytes | None = None  # expose_features: the model.onnx to write

    def prepare(self, images: list[Image.Image]) -> tuple[np.ndarray, int]:
        """Prepared inputs of the images the runtime accepts, and how many it refused (a 4xx: blank, ...)."""
        prepared, refused = [], 0
        for image in images:
            try:
                prepared.append(self.runtime.prepare(image))
            except ServeError:
                refused += 1
        shape = self.runtime.session.get_inputs()[0].shape[1:]
        return (np.stack(prepared) if prepared else np.zeros((0, *shape), np.float32)), refused

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return self.outputs(x)[0]

    def outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The raw probabilities and, when the model exposes them (expose_features), its penultimate features."""
        name = self.runtime.session.get_inputs()[0].name
        runs = [self.runtime.session.run(None, {name: x[i : i + 512]}) for i in range(0, len(x), 512)]
        if not runs:
            return np.zeros((0, 10), np.float32), None
        features = np.concatenate([r[1] for r in runs]) if len(runs[0]) > 1 else None
        return np.concatenate([r[0] for r in runs]), features

    def expose_features(self) -> None:
        """Run the model with its penultimate layer (the input of the last dense layer, before the softmax) as a
        second output, so that a request's one model call also gives the features the "features" check scores;
        main() writes that model.onnx (the same graph and probabilities, one more output)."""
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(self.runtime.file("onnx")))
        if len(model.graph.output) == 1:
            made_by = {out: node for node in model.graph.node for out in node.output}
            node = made_by[model.graph.output[0].name]
            while node.op_type not in ("MatMul", "Gemm"):  # Softmax <- Add (bias) <- MatMul
                node = made_by[node.input[0]]
            output = onnx.helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None)
            model.graph.output.append(output)
            self.onnx_with_features = model.SerializeToString()
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self.runtime.session = session


KEYS = ("ood", "calibration")
DIAGRAMS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]] = {}  # name -> before, after, labels, title
OOD_FILE = "ood.npz"  # the class subspaces (app/families/ood.py Subspaces)


Measure = Callable[[np.ndarray, tuple[np.ndarray, np.ndarray | None]], dict[str, np.ndarray]]


def image_measures(t: float, subspaces: Subspaces | None, digit: bool) -> Measure:
    """What the runtime measures of its inputs (digit_measures, FashionRuntime.measures), from the model's raw
    outputs (probabilities, features or None)."""

    def measure(x: np.ndarray, outputs: tuple[np.ndarray, np.ndarray | None]) -> dict[str, np.ndarray]:
        raw, features = outputs
        if digit:
            return digit_measures(x, temper(raw, t), features)
        measured = {"ink": ink_statistics(x), "confidence": 1.0 - temper(raw, t).max(axis=1)}
        if subspaces is not None:
            measured["shape"] = subspaces.residual(x, raw.argmax(axis=1))
        return measured

    return measure


def idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    if data[2] == 8 and data[3] == 3:
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def photos(pattern: str, step: int) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(glob.glob(pattern))[::step]]


def letters(
    n: int, rng: np.random.Generator, fonts: list[str] | None = None, alphabet: str = LETTERS
) -> list[Image.Image]:
    """Printed letters in the fonts (default: the machine's DejaVu and Liberation), dark on white, various sizes
    and slants."""
    fonts = fonts or [p for p in sorted(glob.glob(FONTS)) if Path(p).parent.name in FIRST_FONTS]
    images = []
    for _ in range(n):
        font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], int(rng.integers(30, 90)))
        image = Image.new("L", (120, 120), 255)
        ImageDraw.Draw(image).text((20, 5), alphabet[int(rng.integers(len(alphabet)))], font=font, fill=0)
        images.append(image.rotate(float(rng.uniform(-15, 15)), fillcolor=255))
    return images


def letter_sets(rng: np.random.Generator) -> dict[str, list[Image.Image]]:
    """Printed letters per group of fonts: each family the outlier-exposure negatives never used (named), all of
    them together for letters that look like digits and for printed digits, and the negatives' own fonts. A
    group whose fonts this machine lacks is left out."""
    import matplotlib

    families = negatives.font_families()
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    groups = {
        "DejaVu": families.get("dejavu", []),
        "Liberation": families.get("liberation", []),
        "Croscore (Arimo, Tinos, Cousine)": families.get("croscore", []),
        "matplotlib's STIX and Computer Modern": [p for pattern in MATPLOTLIB_FONTS for p in sorted(ttf.glob(pattern))],
    }
    unseen = [str(p) for paths in groups.values() for p in paths]
    sets = {
        f"letters, fonts never trained on: {name}": letters(300, rng, [str(p) for p in paths])
        for name, paths in groups.items()
        if paths
    }
    if unseen:
        sets["letters that look like digits (O o I l S s Z z b g q i), fonts never trained on"] = letters(
            300, rng, unseen, DIGIT_LIKE
        )
        sets["printed digits, fonts never trained on (in distribution by intent)"] = letters(
            300, rng, unseen, "0123456789"
        )
    # handwriting's stand-in: Hershey's single-stroke fonts drawn with a pen, in the families negatives never draw
    held = negatives.PEN_HELD_OUT
    sets["letters drawn with a pen, Hershey fonts never trained on"] = negatives.pen_letters(300, rng, held)
    sets["letters that look like digits drawn with a pen, Hershey fonts never trained on"] = negatives.pen_letters(
        300, rng, held, DIGIT_LIKE
    )
    sets["digits drawn with a pen, Hershey fonts never trained on (in distribution by intent)"] = negatives.pen_letters(
        300, rng, held, "0123456789"
    )
    trained = negatives.training_fonts()
    if trained:
        sets["letters, the fonts the negatives were drawn in"] = letters(300, rng, [str(p) for p in trained])
    return sets


def noise(n: int, rng: np.random.Generator) -> list[Image.Image]:
    """Uniform and Gaussian grey noise, 8 to 200 pixels square."""
    images = []
    for i in range(n):
        side = int(rng.integers(8, 200))
        values = rng.integers(0, 256, (side, side)) if i % 2 else rng.normal(128, 40, (side, side))
        images.append(Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)))
    return images


def blank_scans(n: int, rng: np.random.Generator) -> list[Image.Image]:
    """Empty paper: light grey with sensor noise, a lighting gradient and a few specks of dust."""
    images = []
    for _ in range(n):
        side = int(rng.integers(40, 300))
        paper = 235 + rng.normal(0, 4, (side, side)) + np.linspace(0, rng.uniform(0, 15), side)[None, :]
        for _ in range(int(rng.integers(0, 5))):
            y, x = rng.integers(0, side, 2)
            paper[y : y + 2, x : x + 2] -= rng.uniform(30, 120)
        images.append(Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)))
    return images


def sklearn_digits() -> list[Image.Image]:
    """scikit-learn's 1,797 handwritten digits (UCI), 8x8, ink 0..16 on black: real digits that are not MNIST."""
    from sklearn.datasets import load_digits

    return [Image.fromarray((image * 255 / 16).astype(np.uint8)) for image in load_digits().images]


PHOTO_STYLE = 10  # the style group of real photos of garments (calibrate_images' photos)


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SEED).permutation(n)
    return order[: n // 2], order[n // 2 :]


def together(scores: dict[str, np.ndarray], quantile: float, target: float) -> float:
    """The least quantile, from `quantile` up in steps of 0.0005, whose thresholds (one per check's scores) flag at
    most `target` of the inputs together (an input is flagged when any check's score is above its threshold)."""
    for q in np.arange(quantile, 0.99951, 0.0005):
        over = np.any([s > np.quantile(s, q) for s in scores.values()], axis=0)
        if over.mean() <= target:
            return round(float(q), 4)
    return 0.9995


def calibrate_images(
    raw: Raw,
    train: np.ndarray,
    test: np.ndarray,
    labels: np.ndarray,
    others: dict[str, list[Image.Image]],
    held_out: str,
    kinds: list[int],
    subspace_rank: int = 0,
    quantile: float = QUANTILE,
    photos: tuple[np.ndarray, np.ndarray] | None = None,
    flag_target: float | None = None,
) -> dict[str, Any]:
    """Temperature, checks and their validation for a 28x28 image classifier (digit, fashion). `photos`: prepared
    real photos the model learnt from and photos it did not (a validation part), in distribution too: the first
    are one more style group of the statistics, the second join the inputs the thresholds are set on."""
    rng = np.random.default_rng(SEED)
    styles: list[int] = []
    x_train, refused_train = raw.prepare(restyled(train, rng, styles, kinds))
    assert refused_train == 0, f"{refused_train} restyled training images refused"
    if photos is not None:
        x_train = np.concatenate([x_train, photos[0]])
        styles += [PHOTO_STYLE] * len(photos[0])
    x_test, refused = raw.prepare([Image.fromarray(a) for a in test])
    assert refused == 0, f"{refused} in-distribution test images refused"
    p_test = raw.probabilities(x_test)
    fit, report = split(len(x_test))
    t = fit_temperature(p_test[fit], labels[fit])
    subspaces = (
        Subspaces.fit(x_train, raw.probabilities(x_train).argmax(axis=1), subspace_rank) if subspace_rank else None
    )
    digit = isinstance(raw.runtime, DigitRuntime)
    measure = image_measures(t, subspaces, digit)
    x_styled, refused_styled = raw.prepare(restyled(test[fit], rng, kinds=kinds))
    assert refused_styled == 0, f"{refused_styled} restyled in-distribution test images refused"
    reasons = {
        "ink": "the image does not look like the training images (its ink, edges and texture once prepared)",
        "confidence": "the model cannot tell which class it is (low confidence)",
        "shape": "its shape is unlike the training images of the class it was given",
        "features": "the model sees features unlike those of any class's training images",
    }
    p_train, f_train = raw.outputs(x_train)
    checks: dict[str, dict[str, Any]] = {
        "ink": mahalanobis_fit(ink_statistics(x_train, enlarged=digit), np.array(styles)),
        "confidence": {},
    }
    if subspaces is not None:
        checks["shape"] = {}
    if digit and f_train is not None:
        checks["features"] = mahalanobis_fit(f_train, p_train.argmax(axis=1), FEATURE_RIDGE)
    if photos is not None:
        x_styled = np.concatenate([x_styled, photos[1]])
    measured = measure(x_styled, raw.outputs(x_styled))
    scores = {}
    for name, check in checks.items():
        bare = Gate.from_metrics({"ood": {"checks": {name: {**check, "threshold": 1.0, "reason": ""}}}})
        assert bare is not None
        scores[name] = bare.checks[0].score(measured[name])
    first_quantile = quantile
    if flag_target is not None:
        quantile = together(scores, quantile, flag_target)
    for name, check in checks.items():
        check.update(threshold=float(np.quantile(scores[name], quantile)), reason=reasons[name])
    gate = Gate.from_metrics({"ood": {"checks": checks}})
    assert gate is not None

    def flagged(x: np.ndarray) -> float:
        verdicts = gate.verdicts(measure(x, raw.outputs(x))) if len(x) else []
        return sum(v.in_distribution is False for v in verdicts)

    rates: dict[str, dict[str, Any]] = {}
    n_report = len(report)
    rates[held_out] = {"inputs": n_report, "flagged": round(flagged(x_test[report]) / n_report, 4), "refused": 0}
    x_restyled, _ = raw.prepare(restyled(test[report], rng, kinds=kinds))
    rates[f"{held_out}, restyled"] = {"inputs": n_report, "flagged": round(flagged(x_restyled) / n_report, 4)}
    for name, images in others.items():
        x, refused = raw.prepare(images)
        rates[name] = {
            "inputs": len(images),
            "flagged": round(flagged(x) / len(images), 4),
            "refused": refused,
            "flagged_or_refused": round((flagged(x) + refused) / len(images), 4),
        }
    ece_before = expected_calibration_error(p_test[report], labels[report])
    ece_after = expected_calibration_error(temper(p_test[report], t), labels[report])
    DIAGRAMS[raw.entry.name] = (p_test[report], temper(p_test[report], t), labels[report], f"{held_out}, held-out half")
    photo_note = (
        (
            f" and {len(photos[1])} real photos of garments it did not learn from",
            f" and {len(photos[0])} it learnt from",
        )
        if photos is not None
        else ("", "")
    )
    found: dict[str, Any] = {
        "calibration": {
            "method": "temperature scaling (minimum negative log-likelihood)",
            "temperature": t,
            "ece_before": round(ece_before, 4),
            "ece_after": round(ece_after, 4),
            "fitted_on": f"{held_out}, half ({len(fit)}, seed {SEED})",
            "ece_on": f"{held_out}, the other half ({n_report})",
            "command": f"python -m training.calibrate {raw.entry.name}",
        },
        "ood": {
            "method": f"ink: Mahalanobis distance of {7 if digit else 5} statistics of the prepared 28x28 image "
            "from the nearest style group of training images'; confidence: 1 - calibrated max probability; shape "
            f"(when present): squared distance from the predicted class's {subspace_rank}-dimensional PCA subspace "
            "of training images (the ood file); features (when present): Mahalanobis distance of the model's "
            "penultimate features (model.onnx's second output) from the nearest class's training images' (class "
            f"means and covariances, ridge {FEATURE_RIDGE}). ood_score = max(score / threshold); above 1 is flagged",
            "checks": checks,
            "thresholds_on": f"{held_out}, half ({len(fit)}, seed {SEED}), restyled (styles {kinds} of "
            f"training/common/restyle.py restyled()){photo_note[0]}: each check's {quantile} quantile"
            + (
                f" (the least from {first_quantile} at which the checks together flag at most {flag_target})"
                if flag_target is not None
                else ""
            )
            + "; the statistics' "
            f"means and covariances (and the class subspaces, shape): restyled training images{photo_note[1]}",
            "flag_rates": rates,
            "command": f"python -m training.calibrate {raw.entry.name}",
        },
    }
    return found, subspaces


Found = tuple[Raw, tuple[dict[str, Any], Subspaces | None]]


def tight(images: np.ndarray) -> list[Image.Image]:
    """Digits cropped to their ink (the ink touches the border), as users crop them."""
    out = []
    for array in images:
        rows, cols = np.flatnonzero(array.max(axis=1)), np.flatnonzero(array.max(axis=0))
        out.append(Image.fromarray(array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]))
    return out


def digit(models_dir: Path) -> Found:
    raw = Raw("digit", models_dir)
    raw.expose_features()
    mnist = np.load(DATA / "mnist" / "mnist.npz")
    rng = np.random.default_rng(SEED)
    held_out = mnist["x_test"][split(len(mnist["x_test"]))[1][:1000]]  # the half that sets no threshold
    fashion_test = idx(FASHION / "t10k-images-idx3-ubyte.gz")[:1000]
    others = {
        **letter_sets(rng),
        "Fashion-MNIST test": [Image.fromarray(a) for a in fashion_test],
        "clothing photos": photos(str(DATA / "clothing_photos/train/*/*.jpg"), 6),
        "cats and dogs photos": photos(str(DATA / "cats_and_dogs/validation/*/*.jpg"), 2),
        "noise": noise(500, rng),
        "blank scans": blank_scans(300, rng),
        "sklearn 8x8 digits (real handwriting, in distribution by intent)": sklearn_digits(),
        "MNIST test at 16x16 (in distribution by intent)": [
            Image.fromarray(a).resize((16, 16), Image.Resampling.BOX) for a in held_out
        ],
        "MNIST test cropped tight to the ink (in distribution by intent)": tight(held_out),
    }
    train = mnist["x_train"][::3][:20000]
    test, labels = mnist["x_test"], mnist["y_test"]
    return raw, calibrate_images(
        raw, train, test, labels, others, "MNIST test", STYLES, quantile=DIGIT_QUANTILE, flag_target=DIGIT_FLAG_TARGET
    )


BACKGROUNDS = Path("/usr/share/backgrounds")  # the files directly in it: Debian's lomiri and ukui wallpapers
UNSEEN_CROPS = 300  # inputs per set of photos never trained on: each photo whole once, then crops at many scales


def bundled_photos() -> list[Path]:
    """The photos every machine with the project's Python packages has: scikit-learn's sample images (a temple, a
    flower) and matplotlib's portrait of Grace Hopper."""
    import matplotlib
    import sklearn.datasets

    return [
        *sorted((Path(sklearn.datasets.__file__).parent / "images").glob("*.jpg")),
        Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
    ]


def unseen_photos(rng: np.random.Generator) -> dict[str, list[Image.Image]]:
    """Photos of other things from sources the outlier-exposure negatives never use (train_fashion's command takes
    cats, mate-backgrounds and plasma-workspace-wallpapers), made into inputs as the negatives are (whole, then
    crops: negatives.crops). A source this machine lacks (a package not installed) is left out."""
    top = sorted(p for p in BACKGROUNDS.glob("*") if p.suffix.lower() in clothing_photos.EXTENSIONS)
    sources = {
        "photos never trained on: lomiri-wallpapers-16.04 (landscapes, a room, animals, objects)": [
            p for p in top if "_by_" in p.name
        ],
        "wallpapers never trained on: ukui-wallpapers, lomiri-wallpapers (art, a few photos)": [
            p for p in top if "_by_" not in p.name
        ],
        "photos bundled with scikit-learn and matplotlib (a temple, a flower, a portrait)": bundled_photos(),
    }
    return {name: negatives.crops(files, UNSEEN_CROPS, rng) for name, files in sources.items() if files}


def fashion(models_dir: Path) -> Found:
    raw = Raw("fashion", models_dir)
    mnist = np.load(DATA / "mnist" / "mnist.npz")
    rng = np.random.default_rng(SEED)
    garments = DATA / "clothing_photos/train"
    others = {
        "MNIST test digits": [Image.fromarray(a) for a in mnist["x_test"][:1000]],
        "MNIST test digits, dark on light": [Image.fromarray(255 - a) for a in mnist["x_test"][1000:2000]],
        # Cats are among the photos --negatives may learn from (their train part); dogs never are.
        "cat photos (validation part)": photos(str(DATA / "cats_and_dogs/validation/cats/*.jpg"), 2),
        "dog photos (validation part)": photos(str(DATA / "cats_and_dogs/validation/dogs/*.jpg"), 2),
        "letters (printed, DejaVu/Liberation fonts)": letters(600, rng),
        "noise": noise(500, rng),
        **unseen_photos(rng),
        "clothing photos, held-out part (real garments: in distribution by intent)": [
            Image.open(path).convert("RGB") for path, _ in clothing_photos.photo_files(garments, "held-out")
        ],
    }
    train = idx(FASHION / "train-images-idx3-ubyte.gz")[::3][:20000]
    test, labels = idx(FASHION / "t10k-images-idx3-ubyte.gz"), idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    learnt = "photo_held_out_accuracy" in raw.entry.metrics  # trained with --photos: photos are its inputs too
    garment_photos = (
        (clothing_photos.load_part(garments, "train")[0], clothing_photos.load_part(garments, "validation")[0])
        if learnt
        else None
    )
    return raw, calibrate_images(
        raw, train, test, labels.astype(np.int64), others, "Fashion-MNIST test", FASHION_STYLES, 10, 0.995,
        garment_photos,
    )  # fmt: skip


ROFF = re.compile(r"\\f(?:\[[^]]*\]|\(..|.)|\\\(..|\\[-&|e ]|\\")
LANGUAGES = ["cs", "da", "de", "es", "fi", "fr", "hu", "id", "it", "ja", "ko", "nl", "pl", "pt", "ro", "ru", "sv", "tr"]


def man_sentences(folder: str) -> list[str]:
    """Sentences of 6+ words from the manual pages under `folder` (e.g. /usr/share/man/de/man1)."""
    sentences = []
    for path in sorted(glob.glob(f"{folder}/*.gz")):
        paragraph: list[str] = []
        for line in gzip.open(path, "rt", errors="replace").read().splitlines() + [".PP"]:
            if line.startswith((".", "'")):
                text = ROFF.sub("", " ".join(paragraph))
                sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 6]
                paragraph = []
            else:
                paragraph.append(line)
    return sentences


def other_languages(per_language: int, rng: np.random.Generator) -> list[str]:
    """Sentences of 6+ words from the machine's translated manual pages (/usr/share/man/<language>/man1): real
    text in 18 other languages (technical, as film reviews are not, but what matters here is the language).
    A translation leaves some passages in English: a sentence half of whose runs of four words are found in the
    English pages too is left out."""

    def runs(sentence: str) -> set[tuple[str, ...]]:
        found = sentence.lower().split()
        return {tuple(found[i : i + 4]) for i in range(len(found) - 3)}

    english = set().union(*map(runs, man_sentences("/usr/share/man/man1")))

    def translated(sentence: str) -> bool:
        own = runs(sentence)
        return len(own & english) < len(own) / 2

    texts = []
    for language in LANGUAGES:
        sentences = [s for s in man_sentences(f"/usr/share/man/{language}/man1") if translated(s)]
        picked = rng.choice(len(sentences), min(per_language, len(sentences)), replace=False) if sentences else []
        texts += [sentences[i] for i in picked]
    return texts


def random_letters(n: int, rng: np.random.Generator) -> list[str]:
    """Keyboard mashing: 1 to 12 'words' of 2 to 9 random lowercase letters."""
    letters_ = "abcdefghijklmnopqrstuvwxyz"
    return [
        " ".join("".join(rng.choice(list(letters_), int(rng.integers(2, 10)))) for _ in range(int(rng.integers(1, 13))))
        for _ in range(n)
    ]


def code_snippets(n: int, rng: np.random.Generator) -> list[str]:
    """1 to 6 consecutive non-blank lines of the Python installed with numpy (real code, its comments too)."""
    import numpy

    files = sorted(glob.glob(str(Path(numpy.__file__).parent / "**" / "*.py"), recursive=True))
    snippets: list[str] = []
    while len(snippets) < n:
        lines = [line for line in Path(files[int(rng.integers(len(files)))]).read_text().splitlines() if line.strip()]
        if len(lines) < 8:
            continue
        start, size = int(rng.integers(len(lines) - 6)), int(rng.integers(1, 7))
        snippet = "\n".join(lines[start : start + size])
        if len(snippet) >= 20:
            snippets.append(snippet)
    return snippets


VOCABULARY_FILE = "vocabulary.txt"
MIN_COUNT = 10  # a word in the vocabulary is used at least this often in the training reviews
TEXT_QUANTILE = 0.993  # three checks: about 1.5% of held-out in-distribution texts flagged
# The least threshold of a check: no held-out review has a line that looks like code (the quantile is 0), so the
# code check flags a text when more than a fifth of its lines do (and its ood_score reads as a share of that).
TEXT_FLOORS = {"code": 0.2}


def sentiment(name: str, models_dir: Path) -> tuple[Raw, dict[str, Any], list[str]]:
    """Temperature and checks of a sentiment model: held out, SST-2 validation and 1,000 IMDb test reviews."""
    from collections import Counter

    from app.families.sentiment import temper_binary
    from app.families.text_checks import code_share, symbol_share, unknown_share, words
    from training.common.imdb_data import load_imdb
    from training.common.sst2_data import load_sst2

    raw = Raw(name, models_dir)
    (sst_train, _), (sst_texts, sst_labels) = load_sst2(DATA / "sst2")
    (imdb_train, _), (imdb_texts, imdb_labels) = load_imdb(DATA / "imdb")
    counts = Counter(word for text in [*sst_train, *imdb_train] for word in words(text))
    vocabulary = sorted(word for word, count in counts.items() if count >= MIN_COUNT)
    known = frozenset(vocabulary)
    rng = np.random.default_rng(SEED)
    pick = rng.choice(len(imdb_texts), 1000, replace=False)
    texts = list(sst_texts) + [imdb_texts[i] for i in pick]
    labels = np.array(list(sst_labels) + [imdb_labels[i] for i in pick])
    sources = np.array(["SST-2 validation"] * len(sst_texts) + ["IMDb test"] * len(pick))

    def positives(batch: list[str]) -> np.ndarray:
        return np.array([r.score for i in range(0, len(batch), 32) for r in raw.runtime.predict(batch[i : i + 32])])

    def measure(batch: list[str]) -> dict[str, np.ndarray]:
        return {
            "language": np.array([unknown_share(t, known) for t in batch]),
            "symbols": np.array([symbol_share(t) for t in batch]),
            "code": np.array([code_share(t) for t in batch]),
        }

    p = positives(texts)
    fit, report = split(len(texts))
    as_two = lambda q: np.stack([1 - q, q], axis=1)  # noqa: E731
    t, bias = fit_platt(p[fit], labels[fit], fit_temperature(as_two(p[fit]), labels[fit]))
    reasons = {
        "language": "few of its words are English words the training reviews use (another language, random letters?)",
        "symbols": "it is mostly programming punctuation (code or markup?)",
        "code": "its lines look like source code (indentation, identifiers, operators)",
    }
    measured = measure([texts[i] for i in fit])
    checks = {
        name_: {
            "threshold": max(float(np.quantile(measured[name_], TEXT_QUANTILE)), TEXT_FLOORS.get(name_, 1e-6)),
            "reason": reasons[name_],
        }
        for name_ in reasons
    }
    gate = Gate.from_metrics({"ood": {"checks": checks}})
    assert gate is not None

    def rate(batch: list[str]) -> float:
        return round(sum(v.in_distribution is False for v in gate.verdicts(measure(batch))) / len(batch), 4)

    rates: dict[str, dict[str, Any]] = {}
    for source in ("SST-2 validation", "IMDb test"):
        chosen = [texts[i] for i in report if sources[i] == source]
        rates[f"{source} (held-out half)"] = {"inputs": len(chosen), "flagged": rate(chosen)}
    for set_name, batch in {
        "other languages (manual pages in 18 languages)": other_languages(40, rng),
        "random letters": random_letters(500, rng),
        "code (Python lines from numpy)": code_snippets(500, rng),
    }.items():
        rates[set_name] = {"inputs": len(batch), "flagged": rate(batch)}
    before = expected_calibration_error(as_two(p[report]), labels[report])
    after = expected_calibration_error(as_two(temper_binary(p[report], t, bias)), labels[report])
    DIAGRAMS[name] = (
        as_two(p[report]),
        as_two(temper_binary(p[report], t, bias)),
        labels[report],
        "SST-2 + IMDb, held-out half",
    )
    found = {
        "calibration": {
            "method": "Platt scaling: sigmoid(logit / temperature + bias) (minimum negative log-likelihood)",
            "temperature": t,
            "bias": bias,
            "ece_before": round(before, 4),
            "ece_after": round(after, 4),
            "fitted_on": f"half of SST-2 validation + 1,000 IMDb test reviews ({len(fit)}, seed {SEED})",
            "ece_on": f"the other half ({len(report)})",
            "command": f"python -m training.calibrate {name}",
        },
        "ood": {
            "method": "language: share of the text's words not among the training reviews' words used "
            f"{MIN_COUNT}+ times (the ood file); symbols: share of its characters that are programming "
            "punctuation; code: share of its lines that look like source code. ood_score = max(score / threshold); "
            "above 1 is flagged",
            "checks": checks,
            "thresholds_on": f"half of SST-2 validation + 1,000 IMDb test reviews ({len(fit)}, seed {SEED}): each "
            f"check's {TEXT_QUANTILE} quantile",
            "flag_rates": rates,
            "command": f"python -m training.calibrate {name}",
        },
    }
    return raw, found, vocabulary


FAMILY_CALIBRATIONS = {"digit": digit, "fashion": fashion}
TEXT_CALIBRATIONS = ("lstm", "minilm")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted([*FAMILY_CALIBRATIONS, *TEXT_CALIBRATIONS]))
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--dry-run", action="store_true", help="print the numbers, do not write model.json")
    args = parser.parse_args(argv)
    subspaces, vocabulary = None, None
    if args.name in TEXT_CALIBRATIONS:
        raw, found, vocabulary = sentiment(args.name, args.models_dir)
    else:
        raw, (found, subspaces) = FAMILY_CALIBRATIONS[args.name](args.models_dir)
    print(json.dumps({k: {n: v for n, v in found[k].items() if n != "checks"} for k in found}, indent=2))
    if not args.dry_run:
        path = raw.folder / "model.json"
        entry = json.loads(path.read_text())
        entry["metrics"].update(found)
        if raw.onnx_with_features is not None:
            (raw.folder / entry["files"]["onnx"]).write_bytes(raw.onnx_with_features)
        large = {name: check for name, check in found["ood"]["checks"].items() if name == "features"}
        if large:  # 10 classes' 64x64 precisions: 1.6 MB of JSON in model.json and GET /models; 0.2 MB of npz
            store_checks(
                raw.folder / OOD_FILE, {n: {k: c.pop(k) for k in ("means", "precisions")} for n, c in large.items()}
            )
            entry["files"]["ood"] = OOD_FILE
        if subspaces is not None:
            subspaces.save(raw.folder / OOD_FILE)
            entry["files"]["ood"] = OOD_FILE
        if vocabulary is not None:
            (raw.folder / VOCABULARY_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
            entry["files"]["ood"] = VOCABULARY_FILE
        if args.name in DIAGRAMS:
            before, after, labels, title = DIAGRAMS[args.name]
            reliability_diagram(raw.folder / RELIABILITY_FILE, before, after, labels, f"{args.name}: {title}")
            entry["files"]["reliability_diagram"] = RELIABILITY_FILE
        path.write_text(json.dumps(entry, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
