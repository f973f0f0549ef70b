"""Read an image from a request: a multipart upload in field `file`, or a raw body with an image/* type."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from app.core.inference import Probe
from app.core.serving import Serving
from app.errors import InvalidInput, UnsupportedMediaType, echo
from app.families.images import ImageUpload
from app.http.multipart import single_file

ACCEPTED = "multipart/form-data with the image in field 'file', or a raw body with Content-Type image/*"


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


async def read_image_bytes(request: Request) -> bytes:
    media = _media_type(request.headers.get("content-type"))
    if media.startswith("image/"):
        return await request.body()
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"Content-Type '{media or 'none'}' is not accepted: send {ACCEPTED}.")
    common = single_file(request.headers["content-type"], await request.body())
    if common is not None:  # one part named `file`: without the full parser
        _check_part_type(common[0])
        return common[1]
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        fields = [echo(name) for name in form.keys()]
        if not isinstance(upload, UploadFile):
            raise InvalidInput("The multipart form has no file in field 'file'.", {"fields": fields})
        if len(fields) > 1:
            raise InvalidInput("The multipart form must hold only the field 'file'.", {"fields": fields})
        _check_part_type(upload.content_type)
        return await upload.read()


def _check_part_type(content_type: str | None) -> None:
    part = _media_type(content_type)
    if part and not (part.startswith("image/") or part == "application/octet-stream"):
        raise UnsupportedMediaType(f"The uploaded file's Content-Type '{part}' is not an image type.")


async def read_image_upload(request: Request, serving: Serving) -> ImageUpload:
    """The whole body first (a slow upload holds no admission slot), then its header (on the worker pool when the
    body is large), from which the runtime's `cost` is known before anything is decoded."""
    return await serving.read_image(await read_image_bytes(request))


def disconnect_probe(request: Request) -> Probe:
    """What the core calls before work that waited (app/core/inference.py): raises once the client hung up."""

    async def probe() -> None:
        if await request.is_disconnected():
            raise ClientDisconnect()  # app/http/middleware/request_log.py logs it as client_disconnected (499)

    return probe
