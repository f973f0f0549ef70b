"""Decoding refuses corrupt files and decompression bombs before decoding pixels."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.errors import ImageTooLarge, InvalidImage
from app.families.image_decode import decode_image
from tests.support.digit_images import encode, render


def test_decodes_png() -> None:
    assert decode_image(render(3, "mnist_28"), 10_000).size == (28, 28)


@pytest.mark.parametrize("data", [b"", b"not an image", render(3, "black_on_white")[:200]])
def test_corrupt_or_truncated_files_are_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        decode_image(data, 10_000_000)


def test_pixel_limit_is_checked_from_the_header() -> None:
    bomb = encode(Image.new("L", (6000, 6000)), "PNG")  # 36 MP that compresses to a few kB
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLarge, match="6000x6000"):
        decode_image(bomb, 4096 * 4096)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("L", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert decode_image(buffer.getvalue(), 10_000).size == (20, 40)
