"""CORS allow-list: Starlette's CORSMiddleware (the standard, maintained implementation of the Fetch spec's
headers) with only the configured origins, methods and headers. It sits outside the API key check, so a browser's
preflight (OPTIONS, which never carries credentials) is answered without a key.

The one change: a refused preflight gets the service's error body (400 `malformed_body`), not Starlette's plain
text, so every error keeps one shape.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from app.api.errors import error_response
from app.errors import MalformedBody

METHODS = ["GET", "POST"]
HEADERS = ["Authorization", "X-API-Key", "Content-Type", "X-Request-Id"]
EXPOSE = ["X-Request-Id", "Retry-After"]


class CorsMiddleware(CORSMiddleware):
    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        origins = [origin.rstrip("/") for origin in origins]  # browsers send origins without a trailing slash
        super().__init__(
            app, allow_origins=origins, allow_methods=METHODS, allow_headers=HEADERS, expose_headers=EXPOSE
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")  # e.g. "origin, headers"
        message = f"This CORS preflight asks for what DEEPSERVE_CORS_ORIGINS does not allow: {refused}."
        return error_response(MalformedBody(message, {"allowed_methods": METHODS, "allowed_headers": HEADERS}))
