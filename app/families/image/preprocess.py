"""The image family's one resize/convert step, shared by training (training/common/image_folder.py) and serving,
so the model sees the same pixels either way: any Pillow mode to RGB, transparency on white, resized to the
model's square input (bilinear, aspect not kept)."""

from __future__ import annotations

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.BILINEAR


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: transparency composited on white, 16-bit and float images scaled to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB: the whole image resized (bilinear, aspect not kept), exactly as in training."""
    rgb = to_rgb(image)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), RESAMPLE)
    return np.asarray(rgb, dtype=np.uint8)
