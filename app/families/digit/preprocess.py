"""Make a user's digit image look like an MNIST digit: light ink on black, cropped, fitted into 20x20
preserving aspect ratio, and placed in 28x28 with its centre of mass at the centre (how MNIST was made).

Handles any size and mode, dark ink on light paper or light on dark, transparent canvas exports, noisy photos
and JPEG artefacts, and digits anywhere on a large canvas.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from app.errors import InvalidInput
from app.families.placement import Placement

BOX = 20  # MNIST fits each digit's bounding box into 20x20 ...
SIZE = 28  # ... and centres it by centre of mass in 28x28.
FADE = 1.0  # pixels at 20x20 over which a digit cut off by its crop is faded out, like MNIST's anti-aliasing
FILLED = 0.8  # a crop with more of its pixels inked than this is a photo or a texture, not strokes: no fade
NOISE_FLOOR = 0.2  # after stretching to [0, 1], values below this are background noise
MIN_CONTRAST = 24  # grey levels between paper and ink below which the image counts as blank
WORK_SIZE = 512  # larger images are shrunk to this many pixels on their long side before cleaning
MEDIAN_FROM = 48  # images this many pixels on their short side or more are median-filtered (without_paper)
MIN_STROKE = 2.0  # stroke width (pixels at 20x20) that thin strokes are thickened to, like MNIST's pens


def to_gray(image: Image.Image) -> np.ndarray:
    """Float grey levels 0..255. Transparent pixels become a background that contrasts with the strokes."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        span = float(values.max() - values.min()) or 1.0
        return (values - values.min()) * (255.0 / span)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        alpha = rgba[..., 3] / 255.0
        if alpha.min() < 1.0:
            opaque = alpha > 0.5
            dark_ink = not opaque.any() or float(gray[opaque].mean()) < 128
            background = 255.0 if dark_ink else 0.0
            gray = gray * alpha + background * (1.0 - alpha)
        return gray
    return np.asarray(image if image.mode == "L" else image.convert("L"), dtype=np.float32)


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: area over half the boundary length (exact for long straight strokes)."""
    padded = np.pad(mask, 1)
    edges = np.count_nonzero(padded[1:, :] != padded[:-1, :]) + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    return 2.0 * float(mask.sum()) / max(int(edges), 1)


def background(gray: np.ndarray, blocks: int = 4) -> np.ndarray:
    """The paper's level at every pixel: a low percentile of coarse blocks, each lowered to the lowest of its
    neighbours', smoothly upsampled, so uneven lighting is removed while a block mostly covered by a thick stroke
    still keeps its ink. (In a digit cropped to its ink, a whole block can be ink; its neighbours' paper is the
    level then. Measured on scikit-learn's real 8x8 digits cropped tight and enlarged 8x: 80.5% right without
    the neighbours, 94.2% with, 95.4% with a margin.)"""
    h, w = gray.shape
    ys, xs = np.linspace(0, h, blocks + 1, dtype=int), np.linspace(0, w, blocks + 1, dtype=int)
    levels = np.array(
        [[np.percentile(gray[ys[i] : ys[i + 1], xs[j] : xs[j + 1]], 20) for j in range(blocks)] for i in range(blocks)],
        dtype=np.float32,
    )
    padded = np.pad(levels, 1, mode="edge")
    levels = np.min([padded[i : i + blocks, j : j + blocks] for i in range(3) for j in range(3)], axis=0)
    return np.asarray(Image.fromarray(levels, mode="F").resize((w, h), Image.Resampling.BILINEAR))


def resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(values.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BOX), dtype=np.float32)


def median(values: np.ndarray) -> float:
    """np.median(values), the same value, without its generic machinery (~15 us of a small image's ~100)."""
    flat = values.ravel()
    half = flat.size // 2
    if flat.size % 2:
        return float(np.partition(flat, half)[half])
    low, high = np.partition(flat, (half - 1, half))[half - 1 : half + 1]
    return float((low + high) / 2)  # in the array's dtype, as np.median's mean of the two


def paper_is_light(gray: np.ndarray) -> bool:
    """Whether the paper is lighter than the ink: what most of the border is, or, when the ink covers 30-70% of
    the border (a digit cropped to its ink), what the corners (each an eighth of a side) are on average: a digit
    rarely fills its box's corners. (The border's median alone took the ink of 10 of scikit-learn's 1,797 real
    8x8 digits cropped tight for paper (4 of them 1s), and those came out as their negatives; 4 now.)"""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    light = np.count_nonzero(border > 127) / border.size
    if 0.3 < light < 0.7:
        h, w = max(1, round(gray.shape[0] / 8)), max(1, round(gray.shape[1] / 8))
        corners = [gray[:h, :w], gray[:h, -w:], gray[-h:, :w], gray[-h:, -w:]]
        return float(np.mean([c.mean() for c in corners])) > 127
    return median(border) > 127


def without_paper(gray: np.ndarray) -> np.ndarray:
    """Ink levels of light ink on a darker paper: the paper's level removed (for a small image, its 10th
    percentile, not its median: in a small digit cropped to its ink, the ink is half the pixels or more, and its
    median subtracted thins every stroke; scikit-learn's real 8x8 digits cropped tight: 89.1% right with the
    median, 94.3% now, 94.7% with a margin)."""
    if min(gray.shape) >= 32:
        # A 3x3 median removes sensor noise and JPEG speckle (not below 48 pixels: there it erodes strokes two
        # pixels wide; scikit-learn's real 8x8 digits with a margin sent at 32x32, 94.2% right with it, 95.8%
        # without); block medians remove uneven lighting.
        if min(gray.shape) >= MEDIAN_FROM:
            filtered = Image.fromarray(gray.clip(0, 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(3))
            gray = np.asarray(filtered, dtype=np.float32)
        return gray - background(gray)
    flat = gray.ravel()
    return gray - float(np.partition(flat, flat.size // 10)[flat.size // 10])  # the 10th percentile, a few us


def normalise(gray: np.ndarray) -> np.ndarray:
    """Grey levels (any size) -> float32 (28, 28) in [0, 1], MNIST-style."""
    return normalise_placed(gray)[0]


def normalise_placed(gray: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float], tuple[int, ...]]:
    """normalise(gray), the box (left, top, right, bottom, in gray's pixels) of the ink it kept, and where that
    box went in the 28x28 (top, left, height, width): what maps an explanation back onto the caller's image."""
    full = gray.shape
    if max(gray.shape) > WORK_SIZE:  # Big photos: shrink first; a digit keeps far more than 20 pixels.
        factor = WORK_SIZE / max(gray.shape)
        gray = resize(gray, max(1, round(gray.shape[1] * factor)), max(1, round(gray.shape[0] * factor)))
    light_paper = paper_is_light(gray)  # Dark ink on light paper: MNIST is light ink on black.
    ink_levels = without_paper(255.0 - gray if light_paper else gray)
    if float(ink_levels.max()) < MIN_CONTRAST and min(gray.shape) < 32:
        # A small tight crop (a 16x16 digit, a 1 cropped to its stroke) whose ink covers most of the border and
        # of the image: the border's median was ink, so the guess inverted it, and the median subtracted the
        # ink away. Then the other polarity, with the darkest level as the paper (ink is the majority here).
        other = gray if light_paper else 255.0 - gray
        ink_levels = other - float(other.min())
    ink = float(ink_levels.max())
    if ink < MIN_CONTRAST:
        raise InvalidInput("No digit found: the image is blank or has almost no contrast.")
    values = np.clip(ink_levels / ink, 0.0, 1.0)
    values[values < NOISE_FLOOR] = 0.0

    rows, cols = np.flatnonzero(values.any(axis=1)), np.flatnonzero(values.any(axis=0))
    crop: np.ndarray = values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    fy, fx = full[0] / values.shape[0], full[1] / values.shape[1]
    box = (cols[0] * fx, rows[0] * fy, (cols[-1] + 1) * fx, (rows[-1] + 1) * fy)
    cut = (rows[0] == 0, cols[0] == 0, rows[-1] == values.shape[0] - 1, cols[-1] == values.shape[1] - 1)
    side = max(crop.shape)
    if side > 4 * BOX:
        # Shrink large crops to 4x the target first; there, thicken strokes too thin to survive the last
        # shrink (a fine pen on a big canvas), since MNIST strokes are about 2 pixels wide at 20x20.
        width = stroke_width(crop > 0.5) * 4 * BOX / side
        crop = resize(
            crop, max(1, round(crop.shape[1] * 4 * BOX / side)), max(1, round(crop.shape[0] * 4 * BOX / side))
        )
        crop = crop / max(float(crop.max()), 1e-6)
        grow = (int(round(4 * MIN_STROKE - width)) + 1) | 1  # a max filter of odd size k adds k - 1 pixels
        if grow >= 3:
            image = Image.fromarray((crop * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(min(grow, 9)))
            crop = np.asarray(image, dtype=np.float32) / 255.0
    crop, (pad_top, pad_left, pad_bottom, pad_right) = faded(crop, cut)
    scale = BOX / max(crop.shape)
    height, width = (max(1, round(n * scale)) for n in crop.shape)
    if (height, width) == crop.shape:  # already 20 pixels on its long side (MNIST's own digits): resizing copies
        small = crop.astype(np.float32)
    else:
        small = resize(crop, width, height) if scale < 1 else crop_resize_up(crop, width, height)
    small = np.clip(small / max(float(small.max()), 1e-6), 0.0, 1.0)

    ys, xs = np.arange(height)[:, None], np.arange(width)  # np.mgrid's grids, broadcast
    mass = float(small.sum())
    cy, cx = float((small * ys).sum()) / mass, float((small * xs).sum()) / mass
    top = min(max(round(SIZE / 2 - cy), 0), SIZE - height)
    left = min(max(round(SIZE / 2 - cx), 0), SIZE - width)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + height, left : left + width] = small
    inner = (round(pad_top * scale), round(pad_left * scale), round(pad_bottom * scale), round(pad_right * scale))
    region = (top + inner[0], left + inner[1], height - inner[0] - inner[2], width - inner[1] - inner[3])
    return out, box, region


def faded(crop: np.ndarray, cut: tuple[bool, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The crop with a fade to black FADE pixels (at 20x20) long added outside each side where the image cut its
    ink off (`cut`: top, left, bottom, right touch the image's edge) and the ink stops at full strength (its edge
    line holds as much ink as the line inside it or more: no fade of its own), and the pixels added on each side.
    MNIST's strokes fade out over about a pixel (anti-aliasing); a digit cropped to its ink, then enlarged, stops
    hard at the crop, and read worse: scikit-learn's real 8x8 digits cropped tight and enlarged 4x, 95.3% right
    on the served model without the fade, 96.4% with it, 96.3% with a margin. (A MNIST digit cropped to its ink
    keeps its own fade: its edge lines are fainter than the next ones in, and get nothing.)"""
    q = round(FADE * max(crop.shape) / BOX)
    if q < 1 or np.count_nonzero(crop) > FILLED * crop.size:
        return crop, (0, 0, 0, 0)
    lines = [(crop[0], crop[min(1, len(crop) - 1)]), (crop[:, 0], crop[:, min(1, crop.shape[1] - 1)])]
    lines += [(crop[-1], crop[max(-2, -len(crop))]), (crop[:, -1], crop[:, max(-2, -crop.shape[1])])]
    pads = tuple(
        q if side and float(edge.sum()) >= float(next_in.sum()) else 0
        for side, (edge, next_in) in zip(cut, lines, strict=True)
    )
    top, left, bottom, right = pads
    return np.pad(crop, ((top, bottom), (left, right)), mode="linear_ramp", end_values=0), pads


def crop_resize_up(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Enlarge a digit smaller than 20 pixels smoothly."""
    image = Image.fromarray(values.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def shrink(image: Image.Image) -> Image.Image:
    """An image over WORK_SIZE on its long side, box-resized to the size normalise() would shrink it to, while it
    is still 8-bit: the float copies then hold WORK_SIZE^2 pixels instead of the full size (a 4096x4096 RGBA
    upload peaked at +664 MB, 41 bytes per pixel; now +131 MB, 8). Pillow averages RGBA/LA premultiplied, so
    to_gray composites the average exactly as it composited the full-size pixels; the only difference from
    shrinking later in float is rounding to 8 bits (< 1 grey level)."""
    if max(image.size) <= WORK_SIZE:
        return image
    factor = WORK_SIZE / max(image.size)
    size = (max(1, round(image.size[0] * factor)), max(1, round(image.size[1] * factor)))
    if image.mode in ("P", "PA"):  # palette indices cannot be averaged
        image = image.convert("RGBA")
    elif image.mode == "1" or image.mode.startswith("I;16"):
        image = image.convert("L" if image.mode == "1" else "I")
    try:
        return image.resize(size, Image.Resampling.BOX)
    except ValueError:  # a mode resize does not take: keep the full size (correct, only heavier)
        return image


def preprocess_digit(image: Image.Image) -> np.ndarray:
    """A decoded image -> the model's input, float32 (28, 28, 1)."""
    return normalise(to_gray(shrink(image)))[..., None]


def preprocess_digit_placed(image: Image.Image) -> tuple[np.ndarray, Placement]:
    """preprocess_digit(image) and where its 28x28 came from in the image."""
    gray = to_gray(shrink(image))
    values, (left, top, right, bottom), region = normalise_placed(gray)
    fx, fy = image.size[0] / gray.shape[1], image.size[1] / gray.shape[0]
    box = (left * fx, top * fy, right * fx, bottom * fy)
    return values[..., None], Placement(image.size, box, region, (SIZE, SIZE))
