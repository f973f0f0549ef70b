"""Where a model's input came from in the caller's image, to draw an explanation over the image itself.

Every image family's preprocessing takes one box of the image (the ink's, the garment's, or the whole image),
resizes it and places it in a region of the model's input. A map over the input is mapped back through that
box; the rest of the image (what preprocessing cut away) gets zero.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

# A map from dark blue (cold) through red to yellow (hot), drawn over the photo in proportion to its value.
COLOURS = np.array([[0, 0, 80], [120, 0, 160], [230, 40, 40], [255, 200, 0], [255, 255, 160]], dtype=np.float32)


@dataclass(frozen=True)
class Placement:
    image_size: tuple[int, int]  # the caller's image: width, height
    box: tuple[float, float, float, float]  # left, top, right, bottom in the image's pixels
    region: tuple[int, ...]  # top, left, height, width of where the box went in the input
    input_size: tuple[int, int]  # the model's input: height, width

    def shape(self, max_side: int) -> tuple[int, int]:
        """(rows, columns) of the image shrunk to at most max_side on its long side (never enlarged)."""
        width, height = self.image_size
        factor = min(1.0, max_side / max(width, height))
        return max(1, round(height * factor)), max(1, round(width * factor))

    def on_image(self, heat: np.ndarray, max_side: int) -> np.ndarray:
        """A map over the input (input_size) as a map over the image, at most max_side on its long side."""
        rows, cols = self.shape(max_side)
        width, height = self.image_size
        left, top, right, bottom = self.box
        r_top, r_left, r_height, r_width = self.region
        ys, xs = (np.arange(rows) + 0.5) * height / rows, (np.arange(cols) + 0.5) * width / cols
        row_weights = _sample(ys, top, bottom, r_top, r_height, heat.shape[0])
        col_weights = _sample(xs, left, right, r_left, r_width, heat.shape[1])
        return (row_weights @ heat @ col_weights.T).astype(np.float32)


def _sample(points: np.ndarray, start: float, end: float, first: int, length: int, size: int) -> np.ndarray:
    """(len(points), size) weights of linear interpolation: image coordinate -> input pixel; 0 outside the box."""
    where = first + (points - start) / max(end - start, 1e-9) * length - 0.5
    weights = np.stack([np.interp(where, np.arange(size), np.eye(size)[i]) for i in range(size)], axis=1)
    return weights * ((points >= start) & (points < end))[:, None]


def colourise(heat: np.ndarray) -> np.ndarray:
    """A map in [0, 1] -> uint8 RGB (rows, columns, 3) along COLOURS."""
    position = np.clip(heat, 0, 1) * (len(COLOURS) - 1)
    low = np.minimum(position.astype(int), len(COLOURS) - 2)
    t = (position - low)[..., None]
    return (COLOURS[low] * (1 - t) + COLOURS[low + 1] * t).astype(np.uint8)


def overlay_png(image: Image.Image, heat: np.ndarray) -> str:
    """Base64 PNG: the image (grey, at the map's size) with the map, normalised to its maximum, drawn over it."""
    rows, cols = heat.shape
    photo = np.asarray(image.convert("L").resize((cols, rows), Image.Resampling.BOX), dtype=np.float32)
    peak = float(heat.max())
    scaled = heat / peak if peak > 0 else heat
    alpha = (0.75 * np.sqrt(scaled))[..., None]  # weak attribution stays see-through
    grey = np.repeat(photo[..., None], 3, axis=2)
    mixed = grey * (1 - alpha) + colourise(scaled).astype(np.float32) * alpha
    buffer = io.BytesIO()
    Image.fromarray(mixed.clip(0, 255).astype(np.uint8), "RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
