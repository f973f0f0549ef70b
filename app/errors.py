"""Every error the service returns: one exception per kind, each carrying its HTTP status, and one JSON body.

Body: {"error": {"type": <snake_case kind>, "message": <what went wrong and what to do>, "detail": <optional>}}
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ServeError(Exception):
    status_code = 500
    type = "internal_error"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidImage(ServeError):
    status_code, type = 400, "invalid_image"


class ModelNotFound(ServeError):
    status_code, type = 404, "model_not_found"


class PayloadTooLarge(ServeError):
    status_code, type = 413, "payload_too_large"


class ImageTooLarge(ServeError):
    status_code, type = 413, "image_too_large"


class UnsupportedMediaType(ServeError):
    status_code, type = 415, "unsupported_media_type"


class InvalidInput(ServeError):
    status_code, type = 422, "invalid_input"


class Overloaded(ServeError):
    status_code, type = 429, "overloaded"


class ModelNotReady(ServeError):
    status_code, type = 503, "model_not_ready"


class ModelNotInstalled(ServeError):
    status_code, type = 503, "model_not_installed"


ERROR_TABLE: dict[str, int] = {cls.type: cls.status_code for cls in ServeError.__subclasses__()} | {
    ServeError.type: ServeError.status_code,
    "not_found": 404,
    "method_not_allowed": 405,
}


def error_body(type_: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, "detail": detail}}


def error_response(type_: str, message: str, status: int, detail: Any = None) -> JSONResponse:
    return JSONResponse(error_body(type_, message, detail), status_code=status)


async def _serve_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServeError)
    return error_response(exc.type, exc.message, exc.status_code, exc.detail)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return error_response(InvalidInput.type, "The request is missing a field or has an invalid value.", 422, detail)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kinds = {404: "not_found", 405: "method_not_allowed", 413: PayloadTooLarge.type, 422: InvalidInput.type}
    return error_response(kinds.get(exc.status_code, "http_error"), str(exc.detail), exc.status_code)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return error_response(ServeError.type, "Internal server error.", 500, type(exc).__name__)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServeError, _serve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
