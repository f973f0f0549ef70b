"""The requests that come by the thousand, served without the framework's per-request machinery.

`POST /predict/digit` and `POST /predict/image[?model=<name>]` with no other option (no `X-Model-Version`, no other
query parameter), and the Open Inference Protocol's `POST /v2/models/{name}/infer`. FastAPI spends more CPU on one
of them than the digit model does: routing alone (matching the path against every route, in the order the routers
were included) cost ~120 us of a /v2 inference, then dependency solving, its request and response wrappers and the
response model's validation. This middleware, the innermost of the app's own (so the request log, CORS, keys, rate
limit and body limits apply as to every request), runs the same function the route runs (app/http/api/predict.py
`digit`, app/http/api/predict_image.py `image`, app/http/api/v2.py `run`) and sends its answer itself. Anything else
falls through to FastAPI unchanged, so validation and errors of the unusual requests stay the framework's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.serving import Serving
from app.errors import ServeError
from app.http.api import predict, predict_image, v2
from app.http.api.errors import http_error, send_error

SIMPLE_QUERY = re.compile(rb"(?:model=[A-Za-z0-9_.-]{1,64})?")
JSON_HEADERS = [(b"content-type", b"application/json")]
PROTOCOL_MODEL, PROTOCOL_INFER = "/v2/models/", "/infer"
Work = Callable[[Serving, Request], Awaitable[BaseModel | Response]]


def task_lane(scope: Scope) -> tuple[str, Work] | None:
    """(the route, its work) for a task endpoint request without options beyond `?model=` on /predict/image."""
    path, query = scope["path"], scope["query_string"]
    if path not in ("/predict/digit", "/predict/image") or any(n == b"x-model-version" for n, _ in scope["headers"]):
        return None
    if path == "/predict/digit":
        return None if query else (path, lambda serving, request: predict.digit(serving, request))
    if not SIMPLE_QUERY.fullmatch(query):
        return None
    model = query[6:].decode() if query else None
    return path, lambda serving, request: predict_image.image(serving, request, model)


def protocol_lane(scope: Scope) -> tuple[str, Work] | None:
    """(the route, its work) for an Open Inference Protocol inference of a model's served version."""
    path: str = scope["path"]
    if not (path.startswith(PROTOCOL_MODEL) and path.endswith(PROTOCOL_INFER)):
        return None
    name = path[len(PROTOCOL_MODEL) : -len(PROTOCOL_INFER)]
    if not name or "/" in name:
        return None
    return "/v2/models/{name}/infer", lambda serving, request: v2.run(name, None, request, serving)


ROUTES = ("/predict/digit", "/predict/image", "/v2/models/{name}/infer")  # the routes the lanes stand in for


class FastLane:
    def __init__(self, app: ASGIApp, serving: Serving, routes: dict[str, Any]) -> None:
        self.app, self.serving, self.routes = app, serving, routes  # routes: path -> its APIRoute (metrics label)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = None
        if scope["type"] == "http" and scope["method"] == "POST":
            lane = task_lane(scope) or protocol_lane(scope)
        if lane is None:
            await self.app(scope, receive, send)
            return
        route, work = lane
        scope["route"] = self.routes[route]
        try:
            answer = await work(self.serving, Request(scope, receive))
        except ServeError as error:
            await send_error(send, error, scope["path"])
            return
        except HTTPException as exc:  # e.g. Starlette's form parser on a broken multipart body
            await send_error(send, http_error(exc), scope["path"])
            return
        if isinstance(answer, Response):
            await answer(scope, receive, send)
            return
        body = answer.__pydantic_serializer__.to_json(answer)
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
