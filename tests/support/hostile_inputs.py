"""Hostile and malformed requests, as data: each case is what a client sends and what the service must answer.

Used by tests/test_bad_inputs.py against a real uvicorn serving every family. A case's `status` is a set when
either answer is right (e.g. a valid but blank image is a 422 for the digit reader and a 200 for the image
classifier); `type` is None for a success.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from tests.support.digit_images import render

MIB = 1024 * 1024
UPLOAD_LIMIT = 4 * MIB  # Settings().max_upload_bytes, the default the test server runs with


@dataclass
class Case:
    id: str
    method: str
    path: str
    status: int | set[int]
    type: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def float_tiff(value: float) -> bytes:
    pixels = np.zeros((28, 28), dtype=np.float32)
    pixels[10:18, 12:16] = 200.0
    pixels[0, 0] = value
    return encode(Image.fromarray(pixels, mode="F"), "TIFF")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header and holds (almost) no pixel data: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def big_rgba_png(side: int) -> bytes:
    """A tiny file that decodes to side x side RGBA pixels (it compresses to almost nothing)."""
    return encode(Image.new("RGBA", (side, side), (255, 255, 255, 255)), "PNG", optimize=False)


def chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"\0" * min(size, total - sent)
        sent += size


SEVEN = render(7, "mnist_28")
DIGIT_RGB = Image.open(io.BytesIO(render(3, "black_on_white"))).convert("RGB")


def image_cases(path: str) -> list[Case]:
    """Upload cases, the same for /predict/digit and /predict/image (they share the upload path)."""
    ok = {200} if path.endswith("image") else {200, 422}  # the digit reader may find no digit: 422
    blank = 200 if path.endswith("image") else 422
    file = "file"

    def upload(data: bytes, name: str = "x.png", content_type: str = "image/png") -> dict:
        return {"files": {file: (name, data, content_type)}}

    def raw(data: bytes, content_type: str = "image/png") -> dict:
        return {"content": data, "headers": {"content-type": content_type}}

    animated = io.BytesIO()
    frames = [Image.new("L", (40, 40), v) for v in (0, 255)]
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:])
    cases = [
        Case("garbage_png", "POST", path, 400, "invalid_image", upload(b"\x89PNG\r\n\x1a\n garbage")),
        Case("truncated_png", "POST", path, 400, "invalid_image", upload(SEVEN[: len(SEVEN) // 2])),
        Case("empty_raw_body", "POST", path, 400, "invalid_image", raw(b"")),
        Case("empty_upload", "POST", path, 400, "invalid_image", upload(b"")),
        Case("text_as_png", "POST", path, 400, "invalid_image", raw(b"hello, I am not an image")),
        Case("svg", "POST", path, 400, "invalid_image", raw(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")),
        Case("gif_header_only", "POST", path, 400, "invalid_image", raw(b"GIF89a", "image/gif")),
        Case("float_tiff_nan", "POST", path, 400, "invalid_image", raw(float_tiff(float("nan")), "image/tiff")),
        Case("float_tiff_inf", "POST", path, 400, "invalid_image", raw(float_tiff(float("inf")), "image/tiff")),
        Case("float_tiff_huge", "POST", path, ok, None, raw(float_tiff(3e38), "image/tiff")),
        Case("lab_tiff", "POST", path, ok, None, raw(encode(DIGIT_RGB.convert("LAB"), "TIFF"), "image/tiff")),
        Case("cmyk_jpeg", "POST", path, ok, None, raw(encode(DIGIT_RGB.convert("CMYK"), "JPEG"), "image/jpeg")),
        Case("ycbcr_tiff", "POST", path, ok | {400}, None, raw(encode(DIGIT_RGB.convert("YCbCr"), "TIFF"), "image/tiff")),
        Case("int32_png", "POST", path, ok, None, raw(encode(DIGIT_RGB.convert("I"), "PNG"))),
        Case("one_bit_bmp", "POST", path, ok, None, raw(encode(DIGIT_RGB.convert("1"), "BMP"), "image/bmp")),
        Case("animated_gif", "POST", path, {200, 422}, None, raw(animated.getvalue(), "image/gif")),
        Case("one_pixel", "POST", path, blank, None if blank == 200 else "invalid_input", raw(encode(Image.new("L", (1, 1)), "PNG"))),
        Case("blank_white", "POST", path, blank, None if blank == 200 else "invalid_input", raw(encode(Image.new("RGB", (64, 64), "white"), "PNG"))),
        Case("thin_strip", "POST", path, ok, None, raw(encode(Image.new("L", (4000, 1), 128), "PNG"))),
        Case("bomb_header", "POST", path, 413, "image_too_large", raw(png_header_only(50_000, 50_000))),
        Case("body_over_limit", "POST", path, 413, "payload_too_large", raw(b"\0" * (UPLOAD_LIMIT + 1))),
        Case("chunked_over_limit", "POST", path, 413, "payload_too_large", {"content": chunks(UPLOAD_LIMIT + MIB), "headers": {"content-type": "image/png"}}),
        Case("text_plain", "POST", path, 415, "unsupported_media_type", raw(SEVEN, "text/plain")),
        Case("json_body", "POST", path, 415, "unsupported_media_type", {"json": {"file": "x"}}),
        Case("no_content_type", "POST", path, 415, "unsupported_media_type", {"content": SEVEN}),
        Case("multipart_no_boundary", "POST", path, 400, "malformed_body", raw(b"--x\r\n\r\n", "multipart/form-data")),
        Case("multipart_garbage", "POST", path, 400, "malformed_body", raw(b"garbage without parts", "multipart/form-data; boundary=abc")),
        Case("multipart_two_files", "POST", path, 400, "malformed_body", {"files": [(file, ("a.png", SEVEN, "image/png")), (file, ("b.png", SEVEN, "image/png"))]}),
        Case("multipart_many_fields", "POST", path, 400, "malformed_body", {"data": {f"f{i}": "x" for i in range(20)}, "files": upload(SEVEN)["files"]}),
        Case("multipart_extra_field", "POST", path, 422, "invalid_input", {"data": {"note": "x"}, "files": upload(SEVEN)["files"]}),
        Case("multipart_huge_field", "POST", path, 400, "malformed_body", {"data": {"note": "x" * (MIB + 10)}, "files": upload(SEVEN)["files"]}),
        Case("multipart_no_file_field", "POST", path, 422, "invalid_input", {"files": {"image": ("x.png", SEVEN, "image/png")}}),
        Case("multipart_text_part", "POST", path, 415, "unsupported_media_type", upload(SEVEN, "x.txt", "text/plain")),
        Case("get", "GET", path, 405, "method_not_allowed"),
        Case("put", "PUT", path, 405, "method_not_allowed", raw(SEVEN)),
    ]
    return cases


def sentiment_cases() -> list[Case]:
    path = "/predict/sentiment"

    def body(value: Any) -> dict:
        return {"content": json.dumps(value).encode(), "headers": {"content-type": "application/json"}}

    def raw(data: bytes, content_type: str = "application/json") -> dict:
        return {"content": data, "headers": {"content-type": content_type}}

    deep = b"[" * 10_000 + b"]" * 10_000
    return [
        Case("empty_text", "POST", path, 422, "invalid_input", body({"text": ""})),
        Case("blank_text", "POST", path, 422, "invalid_input", body({"text": " \n\t "})),
        Case("empty_object", "POST", path, 422, "invalid_input", body({})),
        Case("text_and_texts", "POST", path, 422, "invalid_input", body({"text": "a", "texts": ["b"]})),
        Case("empty_texts", "POST", path, 422, "invalid_input", body({"texts": []})),
        Case("blank_in_texts", "POST", path, 422, "invalid_input", body({"texts": ["good", ""]})),
        Case("too_many_texts", "POST", path, 422, "invalid_input", body({"texts": ["good"] * 33})),
        Case("text_too_long", "POST", path, 422, "invalid_input", body({"text": "good " * 4001})),
        Case("text_is_number", "POST", path, 422, "invalid_input", body({"text": 5})),
        Case("text_is_null", "POST", path, 422, "invalid_input", body({"text": None})),
        Case("texts_nested", "POST", path, 422, "invalid_input", body({"texts": [["a"]]})),
        Case("unknown_field", "POST", path, 422, "invalid_input", body({"text": "good", "extra": 1})),
        Case("top_level_list", "POST", path, 422, "invalid_input", body(["good"])),
        Case("top_level_string", "POST", path, 422, "invalid_input", body("good")),
        Case("model_lone_surrogate", "POST", path, 404, "model_not_found", raw(b'{"text": "hi", "model": "\\ud800"}')),
        Case("model_very_long", "POST", path, 404, "model_not_found", body({"text": "hi", "model": "m" * 100_000})),
        Case("model_not_sentiment", "POST", path, 422, "invalid_input", body({"text": "hi", "model": "digit"})),
        Case("model_not_installed", "POST", path, 503, "model_not_installed", body({"text": "hi", "model": "distilbert"})),
        Case("text_lone_surrogate", "POST", path, 200, None, raw(b'{"text": "bad \\udc80 film"}')),
        Case("text_nul_emoji_rtl", "POST", path, 200, None, body({"text": "good\u0000 film \U0001f600 \u05e9\u05dc\u05d5\u05dd"})),
        Case("invalid_json", "POST", path, 400, "malformed_body", raw(b'{"text": "good')),
        Case("invalid_utf8", "POST", path, 400, "malformed_body", raw(b'{"text": "\xff\xfe"}')),
        Case("nested_10000_deep", "POST", path, 400, "malformed_body", raw(deep)),
        Case("number_overflow", "POST", path, 422, "invalid_input", raw(b'{"text": 1e400}')),
        Case("text_plain", "POST", path, 415, "unsupported_media_type", raw(b'{"text": "good"}', "text/plain")),
        Case("form_urlencoded", "POST", path, 415, "unsupported_media_type", raw(b"text=good", "application/x-www-form-urlencoded")),
        Case("no_content_type", "POST", path, 415, "unsupported_media_type", {"content": b'{"text": "good"}'}),
        Case("body_over_limit", "POST", path, 413, "payload_too_large", raw(b" " * (UPLOAD_LIMIT + 1))),
        Case("chunked_over_limit", "POST", path, 413, "payload_too_large", {"content": chunks(UPLOAD_LIMIT + MIB), "headers": {"content-type": "application/json"}}),
        Case("get", "GET", path, 405, "method_not_allowed"),
    ]


def times(n: int) -> list[str]:
    """`n` ISO 8601 timestamps a minute apart, from 2020-01-01."""
    return [f"2020-01-01T{i // 60:02d}:{i % 60:02d}:00" for i in range(n)]


def anomaly_cases() -> list[Case]:
    path = "/predict/anomaly"
    ok_series = [float(np.sin(i / 10)) for i in range(400)]

    def body(value: Any) -> dict:
        return {"content": json.dumps(value).encode(), "headers": {"content-type": "application/json"}}

    def raw(data: bytes, content_type: str = "application/json") -> dict:
        return {"content": data, "headers": {"content-type": content_type}}

    series = ", ".join(["1.0"] * 399)
    return [
        Case("nan_literal", "POST", path, 422, "invalid_input", raw(f'{{"values": [NaN, {series}]}}'.encode())),
        Case("infinity_literal", "POST", path, 422, "invalid_input", raw(f'{{"values": [Infinity, {series}]}}'.encode())),
        Case("overflowing_literal", "POST", path, 422, "invalid_input", raw(f'{{"values": [1e400, {series}]}}'.encode())),
        Case("huge_finite_values", "POST", path, 422, "invalid_input", body({"values": [1e300] * 400})),
        Case("huge_but_scorable", "POST", path, {200, 422}, None, body({"values": [1e20 * v for v in ok_series]})),
        Case("tiny_values", "POST", path, 200, None, body({"values": [1e-300 * v for v in ok_series]})),
        Case("constant_series", "POST", path, 200, None, body({"values": [5.0] * 400})),
        Case("too_short", "POST", path, 422, "invalid_input", body({"values": [1.0] * 5})),
        Case("empty", "POST", path, 422, "invalid_input", body({"values": []})),
        Case("strings", "POST", path, 422, "invalid_input", body({"values": ["a"] * 400})),
        Case("null_values", "POST", path, 422, "invalid_input", body({"values": None})),
        Case("nested_values", "POST", path, 422, "invalid_input", body({"values": [[[1.0]]] * 400})),  # rows are lists
        Case("ragged_rows", "POST", path, 422, "invalid_input", body({"values": [[1.0, 2.0], [1.0]] * 200})),
        Case("too_many_points", "POST", path, 422, "invalid_input", body({"values": [1.0] * 20_001})),
        Case("timestamps_mismatch", "POST", path, 422, "invalid_input", body({"values": ok_series, "timestamps": ["2020-01-01T00:00:00"]})),
        Case("timestamps_invalid", "POST", path, 422, "invalid_input", body({"values": ok_series, "timestamps": ["yesterday"] * 400})),
        Case("missing_values", "POST", path, 422, "invalid_input", body({"timestamps": []})),
        Case("invalid_json", "POST", path, 400, "malformed_body", raw(b"{values: ")),
        Case("invalid_utf8", "POST", path, 400, "malformed_body", raw(b'{"values": [1, \xff]}')),
        Case("text_plain", "POST", path, 415, "unsupported_media_type", raw(json.dumps({"values": ok_series}).encode(), "text/plain")),
        Case("no_content_type", "POST", path, 415, "unsupported_media_type", {"content": json.dumps({"values": ok_series}).encode()}),
        Case("timestamps_from_year_1", "POST", path, 200, None, body({"values": ok_series, "timestamps": ["0001-01-01T00:00:00", *times(399)]})),
        Case("timestamps_year_1_backwards", "POST", path, 422, "invalid_input", body({"values": ok_series, "timestamps": ["0001-01-01T00:00:01", "0001-01-01T00:00:00", *times(398)]})),
        Case("timestamps_after_9999_then_earlier", "POST", path, 422, "invalid_input", body({"values": ok_series, "timestamps": ["9999-12-31T23:59:59-14:00", *times(399)]})),
        Case("timestamps_9999_mixed_zones", "POST", path, 422, "invalid_input", body({"values": ok_series, "timestamps": ["9999-12-31T23:59:59", "9999-12-31T23:59:59-14:00", *times(398)]})),
        Case("body_over_limit", "POST", path, 413, "payload_too_large", raw(b" " * (UPLOAD_LIMIT + 1))),
        Case("get", "GET", path, 405, "method_not_allowed"),
    ]


def other_cases() -> list[Case]:
    return [
        Case("unknown_route", "GET", "/nope", 404, "not_found"),
        Case("unknown_model", "GET", "/models/resnet", 404, "model_not_found"),
        Case("model_name_invalid_utf8", "GET", "/models/%ff%fe", 404, "model_not_found"),
        Case("model_name_surrogate", "GET", "/models/%ed%a0%80", 404, "model_not_found"),
        Case("post_to_health", "POST", "/health/ready", 405, "method_not_allowed"),
        Case("unknown_method", "DELETE", "/models", 405, "method_not_allowed"),
        Case("long_request_id", "GET", "/health/live", 200, None, {"headers": {"x-request-id": "r" * 10_000}}),
    ]


def committed_model_cases() -> list[Case]:
    """Cases for the committed models (tests/support/paths.py COMMITTED_MODELS), whose default sentiment model is
    MiniLM: its tokenizer refused a lone surrogate (a 500). /v2 answers errors in the protocol's {"error": message}."""
    json_type = {"content-type": "application/json"}

    def raw(data: bytes, **headers: bytes) -> dict:
        return {"content": data, "headers": {**json_type, **headers}}

    v2_text = b'"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]'
    return [
        Case("text_lone_surrogate_minilm", "POST", "/predict/sentiment", 200, None, raw(b'{"text": "bad \\ud800 film"}')),
        Case("texts_lone_surrogates_minilm", "POST", "/predict/sentiment", 200, None, raw(b'{"texts": ["\\udfff", "ok \\ud83d"]}')),
        Case("explain_lone_surrogate_minilm", "POST", "/explain/sentiment", 200, None, raw(b'{"text": "not \\ud800 bad at all"}')),
        Case("v2_id_lone_surrogate", "POST", "/v2/models/minilm/infer", 200, None, raw(b'{"id": "\\ud800", ' + v2_text + b"}")),
        Case("v2_input_name_lone_surrogate", "POST", "/v2/models/minilm/infer", 422, None, raw(v2_text.replace(b'"text"', b'"\\ud800"', 1).join([b"{", b"}"]))),
        Case("v2_output_name_lone_surrogate", "POST", "/v2/models/minilm/infer", 422, None, raw(b"{" + v2_text + b', "outputs": [{"name": "\\udc00"}]}')),
        Case("v2_header_length_superscript", "POST", "/v2/models/minilm/infer", 400, None, raw(b"{" + v2_text + b"}", **{"inference-header-content-length": b"\xb2"})),  # latin-1, as a header is read
        Case("v2_header_length_1_cubed", "POST", "/v2/models/minilm/infer", 400, None, raw(b"{" + v2_text + b"}", **{"inference-header-content-length": b"1\xb3"})),
        Case("explain_no_content_type", "POST", "/explain/sentiment", 415, "unsupported_media_type", {"content": b'{"text": "good"}'}),
        Case("stream_no_content_type", "POST", "/anomaly/streams/untyped/points", 415, "unsupported_media_type", {"content": b'{"values": [1.0]}'}),
    ]


def all_cases() -> list[Case]:
    return [
        *image_cases("/predict/digit"),
        *image_cases("/predict/image"),
        *sentiment_cases(),
        *anomaly_cases(),
        *other_cases(),
    ]
