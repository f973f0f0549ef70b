"""MNIST-format images (28x28 grey, uint8) as users send such images, and as the digit service prepares them:
for training (styled digits beside MNIST's own, outlier-exposure negatives) and for training/calibrate.py's
thresholds, so that both see what a request gives the model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from app.errors import ServeError
from app.families.digit.preprocess import preprocess_digit

# Sent tiny (styles 4, 8x8, and 5, 16x16) are groups of their own: enlarged by the preprocessing, a tiny digit is as
# smooth as a photo shrunk into the box in the first 5 ink statistics (with them in, 42-45% of photos were flagged
# instead of 95%); the digit's two more (ink_statistics(enlarged=True)) tell them apart.
STYLES = [0, 1, 2, 3, 4, 5, 6, 7, 8]
# Garments: as is, soft, dark on light (a product shot), photographed large on a light background (style 9).
FASHION_STYLES = [0, 2, 6, 9]


def restyled(
    images: np.ndarray, rng: np.random.Generator, styles: list[int] | None = None, kinds: list[int] = STYLES
) -> list[Image.Image]:
    """The data set's images as users send such images: each as it is, or drawn with a crisp pen (binarised), a
    soft one (blurred), a thick one, sent tiny (8x8, 16x16), dark on light, or drawn large (80-400 px, crisp, or as
    grey ink on noisy paper) for the preprocessing to shrink. In-distribution is the kind of
    thing, not MNIST's own rendering: a canvas drawing is crisper than any MNIST digit and must not be flagged."""
    out = []
    for array in images:
        image = Image.fromarray(array)
        style = int(rng.choice(kinds))
        if styles is not None:
            styles.append(style)
        if style == 1:
            image = image.point(lambda v: 255 if v > 100 else 0)
        elif style == 2:
            image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 1.4))))
        elif style == 3:
            image = image.filter(ImageFilter.MaxFilter(3))
        elif style == 4:  # cropped to the digit, maybe binarised, shrunk into a 6-8 pixel square (sklearn's 8x8)
            rows, cols = np.flatnonzero(array.max(axis=1)), np.flatnonzero(array.max(axis=0))
            image = image.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
            if rng.random() < 0.5:
                image = image.point(lambda v: 255 if v > 100 else 0)
            side = int(rng.integers(6, 9))
            scale = side / max(image.size)
            size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
            square = Image.new("L", (side, side))
            square.paste(image.resize(size, Image.Resampling.BOX), ((side - size[0]) // 2, (side - size[1]) // 2))
            image = square
        elif style == 5:
            image = image.resize((16, 16), Image.Resampling.BOX)
        elif style == 6:
            image = image.point(lambda v: 255 - v)
        elif style in (7, 8):  # drawn large (a canvas, a photo of paper) and shrunk by the preprocessing
            side = int(rng.integers(80, 400))
            image = image.resize((side, side), Image.Resampling.BICUBIC).point(lambda v: 255 if v > 110 else 0)
            if style == 8:
                paper = 255 - np.asarray(image, dtype=np.float64) * rng.uniform(0.5, 0.9)
                paper += rng.normal(0, rng.uniform(1, 8), paper.shape)
                image = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
        elif style == 9:  # photographed large on a light background, with sensor noise
            side = int(rng.integers(80, 256))
            big = np.asarray(image.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64)
            photo = 255 - big * rng.uniform(0.6, 0.95) + rng.normal(0, rng.uniform(1, 6), big.shape)
            image = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
        out.append(image)
    return out


def prepared(
    images: list[Image.Image], prepare: Callable[[Image.Image], np.ndarray] = preprocess_digit
) -> tuple[np.ndarray, np.ndarray]:
    """The service's inputs for the images (`prepare`: the digit service's preprocessing, or the fashion model's
    prepare_item), float32 (n, 28, 28, 1), and the indices of the images they are of: images the service would
    refuse (422, e.g. a letter shrunk until no ink is left) are left out."""
    out, kept = [], []
    for i, image in enumerate(images):
        try:
            out.append(prepare(image))
        except ServeError:
            continue
        kept.append(i)
    return (np.stack(out) if out else np.zeros((0, 28, 28, 1), np.float32)), np.array(kept, dtype=int)


def styled(
    x: np.ndarray,
    y: np.ndarray,
    n: int,
    rng: np.random.Generator,
    kinds: list[int] = STYLES,
    prepare: Callable[[Image.Image], np.ndarray] = preprocess_digit,
) -> tuple[np.ndarray, np.ndarray]:
    """n of the training images (uint8 (m, 28, 28), labels y) drawn as users send them (restyled among `kinds`)
    and put through the service's preprocessing (`prepare`): model inputs and their labels (the images the service
    would refuse left out). Beside outlier exposure they keep a model sure of real items that do not look like its
    data set's own."""
    pick = rng.choice(len(x), min(n, len(x)), replace=False) if n else np.zeros(0, dtype=int)
    inputs, kept = prepared(restyled(x[pick], rng, kinds=kinds), prepare)
    return inputs, y[pick][kept]
