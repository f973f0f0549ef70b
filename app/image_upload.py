"""Read an image from a request: a multipart upload in field `file`, or a raw body with an image/* type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.costs import image_header
from app.errors import InvalidInput, UnsupportedMediaType, echo
from app.families.runtime import Runtime
from app.image_decode import decode_and_prepare
from app.inference import Inference
from app.limiter import ConcurrencyLimiter

ACCEPTED = "multipart/form-data with the image in field 'file', or a raw body with Content-Type image/*"


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


async def read_image_upload(request: Request) -> bytes:
    media = _media_type(request.headers.get("content-type"))
    if media.startswith("image/"):
        return await request.body()
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"Content-Type '{media or 'none'}' is not accepted: send {ACCEPTED}.")
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        fields = [echo(name) for name in form.keys()]
        if not isinstance(upload, UploadFile):
            raise InvalidInput("The multipart form has no file in field 'file'.", {"fields": fields})
        if len(fields) > 1:
            raise InvalidInput("The multipart form must hold only the field 'file'.", {"fields": fields})
        part = _media_type(upload.content_type)
        if part and not (part.startswith("image/") or part == "application/octet-stream"):
            raise UnsupportedMediaType(f"The uploaded file's Content-Type '{part}' is not an image type.")
        return await upload.read()


async def predict_upload(
    request: Request,
    runtime: Runtime,
    prepare: Callable[[Image.Image], Any],
    cost: Callable[[int, str], int],
    max_pixels: int,
    limiter: ConcurrencyLimiter,
    inference: Inference,
) -> Any:
    """The one output of `runtime` for the uploaded image, in the order both image routes need: the whole body
    first (a slow upload holds no slot), its header read for the request's `cost(pixels, mode)`, then decoding,
    `prepare` (in a worker thread) and the model call inside the admission slot: decoding is where an image's
    memory goes."""
    data = await read_image_upload(request)
    pixels, mode = await run_in_threadpool(image_header, data, max_pixels)
    with limiter.slot(cost(pixels, mode)):
        x = await run_in_threadpool(decode_and_prepare, data, max_pixels, prepare)
        [out] = await inference(runtime, [x])
    return out
