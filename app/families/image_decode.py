"""Turn uploaded bytes into a Pillow image, refusing corrupt files and decompression bombs before decoding.

Every image leaves here in one of the modes the models' preprocessing handles (MODES), with finite pixels, so
an exotic mode (LAB, HSV, CMYK, YCbCr, ...) or a float image holding NaN cannot reach a model as a 500. Errors
say what is wrong in a stable message; Pillow's own text (which names internal objects) goes to the log only.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from app.errors import ImageTooLarge, InvalidImage, ServeError

log = logging.getLogger("deepserve.images")

# Modes both image families' preprocessing reads directly; anything else is converted to RGB first.
MODES = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "I", "I;16", "I;16B", "I;16L", "F"}
CORRUPT = "The file is not an image Pillow can read, or it is corrupt."
# Pillow's warnings (a decompression-bomb size, odd metadata) say nothing a client can act on: the pixel limit is
# checked from the header above them. Silenced once for the process: warnings.catch_warnings() around every decode
# cost ~10 us a request, and it swaps the process-wide filters, which is unsafe while the image threads decode.
warnings.filterwarnings("ignore", module=r"PIL(\.|$)")


def _usable(image: Image.Image) -> Image.Image:
    """The image in a mode of MODES; float pixels must be finite (scaled to 8 bits when outside 0..255)."""
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise InvalidImage("The image has NaN or infinite pixel values.", {"mode": "F"})
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 255:
            values = (values - low) * (255.0 / ((high - low) or 1.0))
        return Image.fromarray(values.round().astype(np.uint8), mode="L")
    if image.mode in MODES:
        return image
    try:
        return image.convert("RGBA" if "A" in image.mode or "a" in image.mode else "RGB")
    except (ValueError, OSError) as exc:
        log.info("cannot convert image mode %s: %s", image.mode, exc)
        raise InvalidImage(f"Images of mode {image.mode} are not supported; send RGB or grayscale.") from exc


def decode_image(data: bytes, max_pixels: int, opened: Image.Image | None = None) -> Image.Image:
    """Open any format Pillow reads (or take `opened`, Image.open(data) done already), check its size from the
    header, then decode (first frame, EXIF-upright)."""
    if not data:
        raise InvalidImage("The image is empty.")
    try:
        image = opened if opened is not None else Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"The image is {width}x{height} pixels; the limit is {max_pixels} pixels.",
                {"width": width, "height": height, "max_pixels": max_pixels},
            )
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy when it is upright already
    except ServeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"The image is too large to decode safely; the limit is {max_pixels} pixels.") from exc
    except Exception as exc:  # Pillow raises many types on truncated or corrupt files.
        log.info("cannot decode image: %s: %s", type(exc).__name__, exc)
        raise InvalidImage(CORRUPT) from exc
    return _usable(image)


def decode_and_prepare(
    data: bytes, max_pixels: int, prepare: Callable[[Image.Image], Any], opened: Image.Image | None = None
) -> Any:
    """decode_image, then the model's preprocessing; a Pillow or NumPy failure on odd pixels is a 400, not a 500."""
    image = decode_image(data, max_pixels, opened)
    try:
        return prepare(image)
    except ServeError:
        raise
    except (ValueError, OSError, ArithmeticError) as exc:
        log.warning("preprocessing failed on a %s %s image: %s: %s", image.mode, image.size, type(exc).__name__, exc)
        message = "The image could not be prepared for the model; send a plain RGB or grayscale image."
        raise InvalidImage(message) from exc
