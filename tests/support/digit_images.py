"""Handwriting-like digits drawn with strokes, and encoded the many ways users send them."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Strokes in a 100x100 box: polylines, and ellipses given as ("ellipse", x0, y0, x1, y1).
STROKES: dict[int, list] = {
    0: [("ellipse", 28, 12, 72, 88)],
    1: [[(56, 12), (44, 88)]],
    2: [[(28, 32), (36, 18), (52, 12), (68, 20), (70, 36), (30, 84), (74, 84)]],
    3: [[(28, 20), (58, 12), (70, 28), (48, 48), (70, 62), (62, 84), (28, 86)]],
    4: [[(58, 12), (24, 60), (76, 60)], [(60, 30), (60, 88)]],
    5: [[(70, 12), (36, 12), (32, 44), (56, 40), (70, 58), (62, 82), (28, 84)]],
    6: [[(64, 12), (38, 44), (32, 70), (46, 88), (64, 80), (66, 60), (50, 50), (34, 62)]],
    7: [[(26, 16), (74, 16), (44, 88)]],
    8: [("ellipse", 34, 10, 66, 48), ("ellipse", 30, 48, 70, 90)],
    9: [("ellipse", 32, 12, 66, 48), [(66, 28), (60, 90)]],
}

KINDS = [
    "mnist_28",
    "white_on_black_large",
    "black_on_white",
    "blue_ink_rgb_jpeg",
    "rgba_transparent_dark_strokes",
    "rgba_transparent_light_strokes",
    "noisy_photo_jpeg",
    "off_centre_large_canvas",
    "thin_strokes_large",
    "gray16_png",
    "palette_gif",
    "tiff",
]


def ink_mask(digit: int, canvas: tuple[int, int], left: int, top: int, side: int, width: int) -> np.ndarray:
    """Float mask in [0, 1] with the digit drawn at (left, top) in a side x side box."""
    scale = 4  # Draw big and shrink: anti-aliased strokes, like a pen scanned.
    image = Image.new("L", (canvas[0] * scale, canvas[1] * scale), 0)
    draw = ImageDraw.Draw(image)

    def point(x: float, y: float) -> tuple[float, float]:
        return ((left + x * side / 100) * scale, (top + y * side / 100) * scale)

    for stroke in STROKES[digit]:
        if stroke[0] == "ellipse":
            draw.ellipse([*point(*stroke[1:3]), *point(*stroke[3:5])], outline=255, width=width * scale)
        else:
            points = [point(*p) for p in stroke]
            draw.line(points, fill=255, width=width * scale, joint="curve")
            for p in points:  # round caps
                r = width * scale / 2
                draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=255)
    return np.asarray(image.resize(canvas, Image.Resampling.BOX), dtype=np.float32) / 255.0


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def blend(mask: np.ndarray, ink: tuple, paper: tuple) -> np.ndarray:
    m = mask[..., None]
    return (np.array(ink, np.float32) * m + np.array(paper, np.float32) * (1 - m)).clip(0, 255).astype(np.uint8)


def render(digit: int, kind: str, seed: int = 0) -> bytes:
    """The digit as `kind` describes, encoded as a file."""
    rng = np.random.default_rng(seed)
    if kind == "mnist_28":
        big = ink_mask(digit, (280, 280), 40, 40, 200, 22)
        small = Image.fromarray((big * 255).astype(np.uint8)).resize((28, 28), Image.Resampling.LANCZOS)
        return encode(small, "PNG")
    if kind == "white_on_black_large":
        return encode(Image.fromarray((ink_mask(digit, (400, 400), 60, 60, 280, 30) * 255).astype(np.uint8)), "PNG")
    if kind == "black_on_white":
        mask = ink_mask(digit, (300, 360), 40, 60, 220, 24)
        return encode(Image.fromarray(((1 - mask) * 255).astype(np.uint8)), "PNG")
    if kind == "blue_ink_rgb_jpeg":
        mask = ink_mask(digit, (320, 240), 110, 30, 180, 16)
        return encode(Image.fromarray(blend(mask, (20, 40, 160), (245, 240, 228))), "JPEG", quality=85)
    if kind in ("rgba_transparent_dark_strokes", "rgba_transparent_light_strokes"):
        mask = ink_mask(digit, (300, 300), 30, 30, 240, 20)
        rgb = 0 if "dark" in kind else 255
        rgba = np.zeros((300, 300, 4), dtype=np.uint8)
        rgba[..., :3] = rgb
        rgba[..., 3] = (mask * 255).astype(np.uint8)
        return encode(Image.fromarray(rgba, "RGBA"), "PNG")
    if kind == "noisy_photo_jpeg":
        mask = ink_mask(digit, (480, 640), 120, 180, 260, 26)
        shade = np.linspace(170, 215, 480, dtype=np.float32)[None, :, None]  # uneven lighting
        paper = np.broadcast_to(shade, (640, 480, 3))
        photo = paper * (1 - mask[..., None]) + 45 * mask[..., None] + rng.normal(0, 12, (640, 480, 3))
        return encode(Image.fromarray(photo.clip(0, 255).astype(np.uint8)), "JPEG", quality=35)
    if kind == "off_centre_large_canvas":
        mask = ink_mask(digit, (1600, 1200), 1250, 120, 160, 14)
        return encode(Image.fromarray(blend(mask, (10, 10, 10), (255, 255, 255))), "PNG")
    if kind == "thin_strokes_large":
        mask = ink_mask(digit, (800, 800), 100, 100, 600, 4)
        return encode(Image.fromarray(((1 - mask) * 255).astype(np.uint8)), "PNG")
    if kind == "gray16_png":
        mask = ink_mask(digit, (200, 200), 30, 30, 140, 14)
        return encode(Image.fromarray((mask * 60000 + 1000).astype(np.uint16)), "PNG")
    if kind == "palette_gif":
        mask = ink_mask(digit, (240, 240), 40, 40, 160, 16)
        rgb = Image.fromarray(blend(mask, (200, 30, 30), (250, 250, 250)))
        return encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "GIF")
    if kind == "tiff":
        mask = ink_mask(digit, (256, 256), 40, 40, 180, 18)
        return encode(Image.fromarray(((1 - mask) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1)), "TIFF")
    raise ValueError(f"unknown kind {kind}")


def sklearn_digits_28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 real handwritten digits), upscaled into MNIST's 20-in-28 layout."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for small in digits.images:
        big = Image.fromarray((small * (255 / 16)).astype(np.uint8)).resize((20, 20), Image.Resampling.BILINEAR)
        canvas = np.zeros((28, 28), dtype=np.uint8)
        canvas[4:24, 4:24] = np.asarray(big)
        images.append(canvas)
    return np.stack(images), digits.target.astype(np.uint8)


def noise_png(side: int = 64, seed: int = 0) -> bytes:
    """Uniform grey noise: an image no digit model should call a digit (out of distribution)."""
    from PIL import Image

    values = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    return encode(Image.fromarray(values), "PNG")
