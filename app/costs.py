"""What one request costs in working memory, estimated before its work starts: admission control charges it.

Each estimate is the request's units (pixels, text tokens, series points) times a factor, plus a fixed part for
the model call. The factors are measured, not guessed: `python -m bench.cost_factors` runs one request of each
size through the service's own code path in a fresh process and reports its peak RSS growth; the numbers it gave
here are next to each constant. Estimates are deliberately on the high side (the worst image mode, the batch
padded to its longest text), so the sum over the requests in flight bounds the real peak from above.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

from PIL import Image

from app.runtimes.base import Runtime

MB = 2**20

# Images: bytes per pixel of the uploaded image, from decoding through the model's preprocessing.
DIGIT_BYTES_PER_PIXEL = 44.0
IMAGE_BYTES_PER_PIXEL = 44.0
IMAGE_FIXED = 8 * MB

# Text: bytes per token of the padded batch [texts, longest text] through tokenizer and model.
LSTM_BYTES_PER_TOKEN = 4096.0
LSTM_FIXED = 2 * MB
DISTILBERT_BYTES_PER_TOKEN = 4096.0
DISTILBERT_BYTES_PER_TOKEN_SQUARED = 64.0  # attention: heads x length x length per text
DISTILBERT_FIXED = 8 * MB

# Series: bytes per point, plus one model call on a chunk of windows.
ANOMALY_BYTES_PER_POINT = 256.0
ANOMALY_FIXED = 48 * MB


def image_pixels(data: bytes, max_pixels: int) -> int:
    """width x height from the image's header (nothing decoded); 0 when the header is unreadable or over
    `max_pixels`, since decoding then refuses the image before it allocates anything."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Exception:  # Not an image, or a decompression bomb: decode_image says which, at no memory cost.
        return 0
    pixels = width * height
    return pixels if pixels <= max_pixels else 0


def image_cost(pixels: int, bytes_per_pixel: float) -> int:
    return int(IMAGE_FIXED + pixels * bytes_per_pixel)


def text_cost(runtime: Runtime, texts: Sequence[str]) -> int:
    """The padded batch [len(texts), longest] in tokens, from characters alone (an upper bound of the tokens)."""
    if not texts:
        return 0
    longest = max(len(text) for text in texts)
    if runtime.kind == "distilbert-onnx":
        tokens = min(longest + 2, getattr(runtime, "max_length", 512))  # a word piece has at least one character
        per_text = tokens * DISTILBERT_BYTES_PER_TOKEN + tokens * tokens * DISTILBERT_BYTES_PER_TOKEN_SQUARED
        return int(DISTILBERT_FIXED + len(texts) * per_text)
    tokenizer = getattr(runtime, "tokenizer", None)
    max_length = getattr(tokenizer, "max_length", 600)
    tokens = min(longest // 2 + 1, max_length)  # a word is at least one character and one separator
    return int(LSTM_FIXED + len(texts) * tokens * LSTM_BYTES_PER_TOKEN)


def series_cost(points: int) -> int:
    return int(ANOMALY_FIXED + points * ANOMALY_BYTES_PER_POINT)
