"""Synthetic image-folder datasets for the transfer-learning tests: red circles vs blue squares."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("blue_squares", "red_circles")


def shape_image(kind: str, rng: np.random.Generator, size: int = 128) -> Image.Image:
    """A red circle or a blue square of random size and position on a light, slightly noisy background."""
    background = tuple(int(v) for v in rng.integers(215, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(size * 3 // 10, size * 9 // 20))  # large: the colour fills most of the image
    cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
    if kind == "red_circles":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(int(rng.integers(190, 256)), 20, 20))
    else:
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=(20, 20, int(rng.integers(190, 256))))
    return image


def make_image_folder(root: Path, per_class: int = 20, validation_per_class: int = 6, seed: int = 0) -> Path:
    """root/train/<class>/*.png and root/validation/<class>/*.jpg (both formats, varied sizes)."""
    rng = np.random.default_rng(seed)
    for split, n, suffix in (("train", per_class, "png"), ("validation", validation_per_class, "jpg")):
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape_image(kind, rng, int(rng.integers(80, 160))).save(folder / f"{kind}_{i}.{suffix}")
    return root


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()
