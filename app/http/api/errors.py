"""Turn every exception a request can raise into the one error body of app/errors.py, with its status and headers.

ServeError subclasses carry their own status. FastAPI's and Starlette's own exceptions (validation, unparsable
bodies, unknown routes, wrong methods) are mapped onto the documented types, so no other `type` ever reaches a
client. Unexpected exceptions are answered by app/http/middleware/request_log.py, which logs the traceback.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Send

from app.errors import (
    InvalidInput,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServeError,
    UnsupportedMediaType,
    echo,
    error_body,
)
from app.families import FAMILIES
from app.families.tasks import TASKS

# Starlette/FastAPI raise HTTPException with these statuses; each becomes one documented type.
HTTP_KINDS: dict[int, type[ServeError]] = {
    400: MalformedBody,  # unparsable multipart (no boundary, broken part, too many fields/files, part too big)
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
}
# Pydantic error types that mean "the JSON itself could not be read", not "a value is invalid".
UNPARSABLE = {"json_invalid", "json_type", "recursion_loop"}
MAX_LISTED = 10  # validation errors listed in a 422's detail; the message counts them all (app/schemas.py RequestBody)
PROTOCOL_PREFIX = "/v2"  # app/http/api/v2.py


class ErrorResponse(JSONResponse):
    """JSON with non-ASCII escaped: a message echoing a lone surrogate the client sent still encodes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(error: ServeError, path: str = "") -> JSONResponse:
    """The error's one body; on the Open Inference Protocol's routes (/v2...) the protocol's `{"error": message}`,
    with the same status and headers."""
    body = {"error": error.message} if is_protocol_path(path) else error_body(error.type, error.message, error.detail)
    return ErrorResponse(body, status_code=error.status_code, headers=error.headers)


def is_protocol_path(path: str) -> bool:
    return path == PROTOCOL_PREFIX or path.startswith(PROTOCOL_PREFIX + "/")


async def send_error(send: Send, error: ServeError, path: str = "") -> None:
    """Answer with `error` straight from ASGI middleware (outside FastAPI's handlers), rendered as the handlers do."""
    response = error_response(error, path)
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _cause(exc: BaseException) -> BaseException | None:
    """What FastAPI wrapped as "error parsing the body": a 413 or 408 of ours, or the client hanging up."""
    seen: BaseException | None = exc
    for _ in range(8):
        seen = (seen.__cause__ or seen.__context__) if seen is not None else None
        if isinstance(seen, ServeError | ClientDisconnect):
            return seen
    return None


def _clean(value: Any) -> Any:
    """Input echoed in validation details, made safe to encode (a lone surrogate would make a 500) and short."""
    return echo(value, 80) if isinstance(value, str) else value


async def _serve_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServeError)
    return error_response(exc, request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e["type"] in UNPARSABLE for e in errors) and all(e["loc"][:1] == ("body",) for e in errors):
        error: ServeError = MalformedBody("The request body is not valid JSON (or not UTF-8, or nested too deep).")
        return error_response(error, request.url.path)
    listed = errors[:MAX_LISTED]
    detail = [{"loc": [_clean(p) for p in e["loc"]], "msg": _clean(e["msg"]), "type": e["type"]} for e in listed]
    message = "The request is missing a field or has an invalid value."
    if len(errors) > len(listed):
        message += f" {len(errors)} problems; the first {len(listed)} are listed."
    error = InvalidInput(message, detail)
    return error_response(error, request.url.path)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = http_error(exc)
    if exc.status_code == 404 and request.url.path.startswith(PREDICT_PREFIX):
        error = wrong_predict_route(request.url.path) or error
    return error_response(error, request.url.path)


PREDICT_PREFIX = "/predict/"
PREDICT_ROUTES = sorted(task.path for task in TASKS.values())


def wrong_predict_route(path: str) -> NotFound | None:
    """A 404 that points to the right route when a request names a model (or family) in the route itself, as in
    POST /predict/fashion: each task has one route, and the model is chosen in the request."""
    name = path.removeprefix(PREDICT_PREFIX).strip("/").lower()
    family = FAMILIES.get(name)
    routes = PREDICT_ROUTES
    if family is not None:
        message = f"No route {path}: model '{name}' answers at {family.endpoint.split(',')[0]}."
        return NotFound(message, {"model": name, "route": family.endpoint.split(",")[0], "routes": routes})
    if "/" not in name:
        return NotFound(f"No route {echo(path)}: the prediction routes are {', '.join(routes)}.", {"routes": routes})
    return None


def http_error(exc: StarletteHTTPException) -> ServeError:
    """The documented error for a Starlette/FastAPI HTTPException (ClientDisconnect re-raised: nobody to answer;
    app/http/middleware/request_log.py logs it as client_disconnected)."""
    cause = _cause(exc)
    if isinstance(cause, ClientDisconnect):
        raise cause
    if isinstance(cause, ServeError):
        return cause
    kind = HTTP_KINDS.get(exc.status_code, MalformedBody if exc.status_code < 500 else ServeError)
    message = _clean(str(exc.detail)) if exc.status_code != 405 else "This route does not take that method."
    return kind(message, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServeError, _serve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
