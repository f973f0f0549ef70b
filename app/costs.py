"""What one request costs in working memory, estimated before its work starts: admission control charges it.

Each estimate is the request's units (pixels, text tokens, series points) times a factor, plus a fixed part. The
factors are measured, not guessed: `python -m bench.cost_factors` runs one request of each size through the
service's own code path in a fresh process and reports its peak RSS growth; what it gave here (2 CPU cores,
onnxruntime 1.32, Pillow 12.3, the committed models and a real-shape DistilBERT) is next to each constant.
Estimates err high (the heaviest image mode of a class, tokens bounded from characters), so the sum over the
requests in flight bounds their real peak from above.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from app.families.runtime import Runtime

MB = 2**20

# ---- images: /predict/digit ---------------------------------------------------------------------------------------
# Decoded pixels (Pillow: 1 byte for 1/L/P, 4 for RGB/RGBA/I/F) plus decode_image's EXIF copy, plus shrink()'s
# resize (premultiplied RGBa for RGBA); the float work after it is on at most 512x512 pixels.
# Measured peak growth: RGBA 4096^2 +139 MB (8.3 B/px), 2048^2 +39 MB; RGB 4096^2 +129 MB; I;16 +105 MB;
# F (TIFF) +130 MB; L 4096^2 +33 MB (2.0 B/px); any mode at 512^2 +6..10 MB (the float work, ~40 B/px).
DIGIT_BYTES_PER_PIXEL = 10.0
DIGIT_BYTES_PER_GRAY_PIXEL = 3.0  # modes 1 and L
# Mode F (32-bit float, e.g. TIFF): 8.1 B/px measured here, but checking float pixels for NaN/inf and rescaling
# them in float64 at full size (~34 B/px) before anything shrinks them is charged too, wherever it happens.
DIGIT_BYTES_PER_FLOAT_PIXEL = 40.0
DIGIT_FLOAT_BYTES_PER_PIXEL = 40.0  # on min(pixels, 512 x 512)
DIGIT_FLOAT_PIXELS = 512 * 512
# ---- images: /predict/image (prepare_image: to RGB, transparency on white, resize to the model's size) ------------
# Measured with a real-shape MobileNetV2 (alpha 1.0, 224x224, random weights): RGBA 4096^2 +320 MB (20.0 B/px),
# 2048^2 +80 MB; RGB 4096^2 +131 MB (8.2 B/px); L 4096^2 +83 MB (5.2 B/px).
IMAGE_BYTES_PER_PIXEL = 21.0
IMAGE_BYTES_PER_GRAY_PIXEL = 6.0
IMAGE_FIXED = 8 * MB  # its model call: 4 concurrent calls +25 MB, 8 +32 MB
GRAY_MODES = {"1", "L"}

# ---- text: the batch [texts, longest text] in tokens ---------------------------------------------------------------
# LSTM (3 x BiLSTM(64) averaged): 32 x 600 tokens +66 MB (3.6 KB/token), 32 x 300 +33 MB, 32 x 100 +8.8 MB.
LSTM_BYTES_PER_TOKEN = 4096.0
LSTM_FIXED = 2 * MB
# DistilBERT int8 (real shape, random weights): per text ~29 KB/token + ~196 B/token^2 (attention): 32 x 512
# tokens +2,022 MB (63 MB a text), 32 x 103 +155 MB, 32 x 33 +36 MB, 8 x 67 +18 MB. The runtime splits a batch
# into model calls of at most DISTILBERT_CALL_BYTES (app/families/distilbert/runtime.py), so no call, however the
# micro-batcher mixes requests, needs more.
DISTILBERT_BYTES_PER_TOKEN = 29.0 * 1024
DISTILBERT_BYTES_PER_TOKEN_SQUARED = 200.0
DISTILBERT_CALL_BYTES = 128 * MB
DISTILBERT_FIXED = 8 * MB

# ---- series: /predict/anomaly --------------------------------------------------------------------------------------
# Windows are scored 16 at a time (app/families/anomaly/scoring.py), so the model calls cost the same at any length:
# +1.3 MB at 1,000 points, +1.4 MB at 5,000, +2.0 MB at 20,000 (it was +46, +116 and +315 MB scoring every
# window at once). Per point: the values as float64, float32 and sums, and the response (~100 bytes).
ANOMALY_BYTES_PER_POINT = 128.0
ANOMALY_FIXED = 4 * MB


# ---- request bodies (charged by app/body_limit.py as they arrive, until the request ends) --------------------------
# While received, a body is held about 3 times (the server's buffer, the chunks, then joined): 48 concurrent 4 MB
# bodies peaked at +610 MB. A complete JSON body is then parsed into Python objects: a 4 MB array of 2M zeros
# peaked at +32 MB alone.
BODY_FACTOR = 3.0
JSON_BODY_FACTOR = 8.0


def body_cost(received: int, content_type: bytes, complete: bool) -> int:
    json = complete and content_type.split(b";")[0].strip().lower().endswith(b"json")
    return int(received * (JSON_BODY_FACTOR if json else BODY_FACTOR))


def image_header(data: bytes, max_pixels: int) -> tuple[int, str]:
    """(width x height, mode) from the image's header, nothing decoded; 0 pixels when the header is unreadable or
    over `max_pixels`, since decoding then refuses the image before it allocates anything."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                (width, height), mode = image.size, image.mode
    except Exception:  # Not an image, or a decompression bomb: decode_image says which, at no memory cost.
        return 0, ""
    pixels = width * height
    return (pixels, mode) if pixels <= max_pixels else (0, mode)


def digit_cost(pixels: int, mode: str) -> int:
    per_pixel = DIGIT_BYTES_PER_GRAY_PIXEL if mode in GRAY_MODES else DIGIT_BYTES_PER_PIXEL
    per_pixel = DIGIT_BYTES_PER_FLOAT_PIXEL if mode == "F" else per_pixel
    return int(MB + pixels * per_pixel + min(pixels, DIGIT_FLOAT_PIXELS) * DIGIT_FLOAT_BYTES_PER_PIXEL)


def image_cost(pixels: int, mode: str) -> int:
    per_pixel = IMAGE_BYTES_PER_GRAY_PIXEL if mode in GRAY_MODES else IMAGE_BYTES_PER_PIXEL
    per_pixel = max(per_pixel, DIGIT_BYTES_PER_FLOAT_PIXEL) if mode == "F" else per_pixel
    return int(IMAGE_FIXED + pixels * per_pixel)


def distilbert_text_bytes(tokens: int) -> float:
    """Working memory of one text of `tokens` word pieces in a model call."""
    return tokens * DISTILBERT_BYTES_PER_TOKEN + tokens * tokens * DISTILBERT_BYTES_PER_TOKEN_SQUARED


def text_cost(runtime: Runtime, texts: Sequence[str]) -> int:
    """The padded batch [len(texts), longest], its tokens bounded from characters (no tokenizing here)."""
    if not texts:
        return 0
    longest = max(len(text) for text in texts)
    if runtime.kind == "distilbert-onnx":
        tokens = min(longest + 2, getattr(runtime, "max_length", 512))  # a word piece has at least one character
        one = distilbert_text_bytes(tokens)  # calls of at most DISTILBERT_CALL_BYTES (one text when it is more)
        return int(DISTILBERT_FIXED + min(len(texts) * one, max(DISTILBERT_CALL_BYTES, one)))
    max_length = getattr(getattr(runtime, "tokenizer", None), "max_length", 600)
    tokens = min(longest // 2 + 1, max_length)  # a word is at least one character and one separator
    return int(LSTM_FIXED + len(texts) * tokens * LSTM_BYTES_PER_TOKEN)


def series_cost(points: int) -> int:
    return int(ANOMALY_FIXED + points * ANOMALY_BYTES_PER_POINT)
