"""Turn uploaded bytes into a Pillow image, refusing corrupt files and decompression bombs before decoding."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

from app.errors import ImageTooLarge, InvalidImage


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open any format Pillow reads, check its size from the header, then decode (first frame, EXIF-upright)."""
    if not data:
        raise InvalidImage("The image is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"The image is {width}x{height} pixels; the limit is {max_pixels} pixels.",
                    {"width": width, "height": height, "max_pixels": max_pixels},
                )
            image.load()
            return ImageOps.exif_transpose(image)
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except Exception as exc:  # Pillow raises many types on truncated or corrupt files.
        raise InvalidImage("The file is not an image Pillow can read, or it is corrupt.", str(exc)) from exc
