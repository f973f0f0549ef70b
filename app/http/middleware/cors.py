"""CORS allow-list: Starlette's CORSMiddleware (the standard, maintained implementation of the Fetch spec's
headers) with only the configured origins, and the methods and headers the API itself takes. It sits outside the
API key check, so a browser's preflight (OPTIONS, which never carries credentials) is answered without a key.

The methods and the request headers the routes declare (X-Model-Version, ...) are read from the routes, so a new
route or header is allowed without a second list to keep; the headers the middlewares and the /v2 body read are
added by name. The response headers a browser's script may read are exposed: the request id, Retry-After on 429,
WWW-Authenticate on 401/403, Allow on 405 and /v2's Inference-Header-Content-Length.

The one change to Starlette's behaviour: a refused preflight gets the service's error body (400 `malformed_body`),
not Starlette's plain text, so every error keeps one shape.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from app.errors import MalformedBody
from app.http.api.errors import error_response
from app.http.api.v2 import HEADER_LENGTH

READ_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "X-Request-Id", HEADER_LENGTH]  # not route parameters
EXPOSE = ["X-Request-Id", "Retry-After", "WWW-Authenticate", "Allow", HEADER_LENGTH]


def declared_headers(dependant: Dependant) -> set[str]:
    """The header parameters of a route and of every dependency it has."""
    names = {param.alias for param in dependant.header_params}
    for dependency in dependant.dependencies:
        names |= declared_headers(dependency)
    return names


def route_methods(routes: Iterable[BaseRoute]) -> list[str]:
    return sorted({method for route in routes if isinstance(route, APIRoute) for method in route.methods or ()})


def route_headers(routes: Iterable[BaseRoute]) -> list[str]:
    declared = {name for route in routes if isinstance(route, APIRoute) for name in declared_headers(route.dependant)}
    return sorted(declared | set(READ_HEADERS), key=str.lower)


class CorsMiddleware(CORSMiddleware):
    def __init__(self, app: ASGIApp, origins: list[str], routes: list[BaseRoute]) -> None:
        origins = [origin.rstrip("/") for origin in origins]  # browsers send origins without a trailing slash
        self.methods, self.headers = route_methods(routes), route_headers(routes)
        super().__init__(
            app, allow_origins=origins, allow_methods=self.methods, allow_headers=self.headers, expose_headers=EXPOSE
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")  # e.g. "origin, headers"
        message = f"This CORS preflight asks for what DEEPSERVE_CORS_ORIGINS does not allow: {refused}."
        detail = {"allowed_methods": self.methods, "allowed_headers": self.headers}
        return error_response(MalformedBody(message, detail))
