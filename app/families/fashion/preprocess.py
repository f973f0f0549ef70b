"""Make a user's photo of a garment look like a Fashion-MNIST item, and the class names, shared with training.

Fashion-MNIST was made from Zalando's product photos (Xiao et al. 2017): the item trimmed, its longest side
resized to 28 pixels, the colours negated and converted to grayscale. So an item is light on a black (0)
background, fills the 28x28 frame on its longest side, is centred on the other, and its brightest pixel is near
255. `prepare_item` does the same to a photo of any size and mode: a light background (the usual product photo,
a garment on a white sheet) is inverted, a dark one kept; the background level is removed, the item cropped to
its extent and fitted into 28x28 keeping its aspect ratio.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from app.errors import InvalidInput
from app.families.image.preprocess import to_rgb
from app.families.placement import Placement

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SIZE = 28
WORK_SIZE = 256  # photos are shrunk to this many pixels on their long side first: the item keeps far more than 28
MIN_CONTRAST = 24  # grey levels between background and item below which the photo counts as blank
ITEM_LEVEL = 0.15  # after removing the background, pixels above this share of the brightest one belong to the item


def to_input(items: np.ndarray) -> np.ndarray:
    """uint8 grey levels (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1], the model's input (training's too)."""
    return (np.asarray(items, dtype=np.float32) / 255.0)[..., None]


def to_gray(image: Image.Image) -> np.ndarray:
    """Float grey levels 0..255 of a photo at most WORK_SIZE on its long side (transparency on white)."""
    rgb = to_rgb(image)
    if max(rgb.size) > WORK_SIZE:
        factor = WORK_SIZE / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor))), Image.Resampling.BOX)
    gray = rgb.convert("L")
    if min(gray.size) >= 16:
        gray = gray.filter(ImageFilter.MedianFilter(3))  # sensor noise and JPEG speckle
    return np.asarray(gray, dtype=np.float32)


def fit(crop: np.ndarray) -> np.ndarray:
    """A cropped item (any size) -> float32 (28, 28): its longest side 28 pixels, centred on the other."""
    return fit_placed(crop)[0]


def fit_placed(crop: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """fit(crop) and where the crop went: (top, left, height, width)."""
    scale = SIZE / max(crop.shape)
    height, width = (min(SIZE, max(1, round(n * scale))) for n in crop.shape)
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    small = np.asarray(Image.fromarray(crop, mode="F").resize((width, height), resample), dtype=np.float32)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - height) // 2, (SIZE - width) // 2
    out[top : top + height, left : left + width] = small
    return out, (top, left, height, width)


def normalise(gray: np.ndarray) -> np.ndarray:
    """Grey levels (any size) -> float32 (28, 28) in [0, 1]: light item on black, fitted and centred."""
    return normalise_placed(gray)[0]


def normalise_placed(gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """normalise(gray), the item's box in gray (left, top, right, bottom) and where it went in the 28x28."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # a light background: Fashion-MNIST items are negated product photos
        gray, border = 255.0 - gray, 255.0 - border
    item = np.clip(gray - float(np.median(border)), 0.0, None)
    peak = float(item.max())
    if peak < MIN_CONTRAST:
        raise InvalidInput("No item found: the image is blank or has almost no contrast.")
    rows = np.flatnonzero((item > ITEM_LEVEL * peak).any(axis=1))
    cols = np.flatnonzero((item > ITEM_LEVEL * peak).any(axis=0))
    crop = np.ascontiguousarray(item[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    out, region = fit_placed(crop)
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return np.clip(out / max(float(out.max()), 1e-6), 0.0, 1.0), box, region


def prepare_item(image: Image.Image) -> np.ndarray:
    """A decoded photo -> the model's input, float32 (28, 28, 1)."""
    return normalise(to_gray(image))[..., None]


def prepare_item_placed(image: Image.Image) -> tuple[np.ndarray, Placement]:
    """prepare_item(image) and where its 28x28 came from in the photo."""
    gray = to_gray(image)
    values, (left, top, right, bottom), region = normalise_placed(gray)
    fx, fy = image.size[0] / gray.shape[1], image.size[1] / gray.shape[0]
    box = (left * fx, top * fy, right * fx, bottom * fy)
    return values[..., None], Placement(image.size, box, region, (SIZE, SIZE))
