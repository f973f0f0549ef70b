"""One structured (JSON) log line and metrics per request, with its latency and a request id.

It is also the last line of defence: an exception nothing else handled is logged with its traceback and
answered with the `internal_error` body (status 500) instead of dropping the connection, and a client that
hangs up mid-request is logged as `client_disconnected` (status label 499 in /metrics), not as a server error.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import send_error
from app.auth import KEY_NAME
from app.errors import ServeError
from app.metrics import Metrics

log = logging.getLogger("deepserve.access")

CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection"; never sent, only logged and counted


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name}
        line |= record.__dict__.get("fields", {"message": record.getMessage()})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(level: str) -> None:
    """JSON lines on stderr for the `deepserve` loggers; replaces only a handler an earlier app installed."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("deepserve")
    root.handlers[:] = [h for h in root.handlers if not isinstance(h.formatter, JsonFormatter)] + [handler]
    root.setLevel(level.upper())
    root.propagate = False


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:128] or uuid.uuid4().hex
        status, responded, event = 500, False, "request"

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            status, event = CLIENT_CLOSED, "client_disconnected"
        except Exception:
            log.exception("unhandled error", extra={"fields": {"event": "unhandled_error", "request_id": request_id}})
            if not responded:
                message = "Internal server error; the log has the details under this request id."
                await send_error(send_with_id, ServeError(message, {"request_id": request_id}), scope["path"])
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_done(scope["method"], route, status, seconds)
            fields = {
                "event": event,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "latency_ms": round(seconds * 1000, 2),
                "request_id": request_id,
            }
            if client := scope.get(KEY_NAME):  # the API key's name, set by app/auth.py
                fields["client"] = client
            log.info(event, extra={"fields": fields})
