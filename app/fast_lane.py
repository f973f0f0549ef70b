"""The common image request served without the framework's per-request machinery.

`POST /predict/digit` and `POST /predict/image[?model=<name>]` with no other option (no `X-Model-Version`, no
other query parameter) are the requests that come by the thousand. FastAPI spends more CPU on one of them (routing,
dependency solving, its request and response wrappers and the response model's validation) than the digit model
does. This middleware, the innermost of the app's own (so the request log, CORS, keys, rate limit and body limits
apply as to every request), runs the same function the route runs (app/api/predict.py `digit`,
app/api/predict_image.py `image`) and writes its answer as JSON itself. Anything else falls through to FastAPI
unchanged, so validation and errors of the unusual requests stay the framework's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import predict, predict_image
from app.api.errors import http_error, send_error
from app.errors import ServeError
from app.serving import Serving

SIMPLE_QUERY = re.compile(rb"(?:model=[A-Za-z0-9_.-]{1,64})?")
JSON_HEADERS = [(b"content-type", b"application/json")]
Handler = Callable[[Serving, Request, str | None], Awaitable[BaseModel]]


def _digit(serving: Serving, request: Request, model: str | None) -> Awaitable[BaseModel]:
    return predict.digit(serving, request)


HANDLERS: dict[str, tuple[Handler, bool]] = {  # path -> (handler, takes ?model=)
    "/predict/digit": (_digit, False),
    "/predict/image": (predict_image.image, True),
}


class FastLane:
    def __init__(self, app: ASGIApp, serving: Serving, routes: dict[str, Any]) -> None:
        self.app, self.serving, self.routes = app, serving, routes  # routes: path -> its APIRoute (metrics label)

    def _simple(self, scope: Scope, takes_model: bool) -> str | None | bool:
        """The `?model=` value (None without one) when the request has no other option; False otherwise."""
        query: bytes = scope["query_string"]
        if query and not (takes_model and SIMPLE_QUERY.fullmatch(query)):
            return False
        if any(name == b"x-model-version" for name, _ in scope["headers"]):
            return False
        return query[6:].decode() if query else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = HANDLERS.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        model = self._simple(scope, lane[1]) if lane is not None else False
        if lane is None or model is False:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes[scope["path"]]
        try:
            answer = await lane[0](self.serving, Request(scope, receive), model)  # type: ignore[arg-type]
        except ServeError as error:
            await send_error(send, error, scope["path"])
            return
        except HTTPException as exc:  # e.g. Starlette's form parser on a broken multipart body
            await send_error(send, http_error(exc), scope["path"])
            return
        body = answer.__pydantic_serializer__.to_json(answer)
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
