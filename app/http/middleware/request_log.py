"""One structured (JSON) log line and metrics per request, with its latency and a request id.

It is also the last line of defence: an exception nothing else handled is logged with its traceback and
answered with the `internal_error` body (status 500) instead of dropping the connection, and a client that
hangs up mid-request is logged as `client_disconnected` (status label 499 in /metrics), not as a server error.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import time
from contextlib import nullcontext

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import Metrics
from app.errors import ServeError
from app.http.api.errors import send_error
from app.http.middleware.auth import KEY_NAME

log = logging.getLogger("deepserve.access")

# Request ids: 16 random hex digits drawn when the process starts, then a counter: unique across processes and
# restarts like uuid4's, without a system call and an object per request.
_ids = itertools.count()
_id_prefix = secrets.token_hex(8)


def next_request_id() -> str:
    return f"{_id_prefix}{next(_ids):016x}"


def _new_id_prefix() -> None:  # a forked child draws its own
    global _id_prefix
    _id_prefix = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_id_prefix)


CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection"; never sent, only logged and counted


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name}
        line |= record.__dict__.get("fields", {"message": record.getMessage()})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def access(fields: dict[str, object]) -> None:
    """One access line. While the `deepserve` loggers are as setup_logging left them (one JSON handler, nothing
    added below it), the line is written to that handler's stream as the handler would write it, without the
    LogRecord logging builds (the caller's frame, thread and process looked up, a lock, the formatter): that was
    ~30 us of each request, a tenth of a digit's CPU in the app. Otherwise (a handler a test or an embedding
    application added, another level) it goes through logging as any record."""
    if not log.isEnabledFor(logging.INFO):
        return
    handler = _plain_handler()
    if handler is None:
        log.info(str(fields["event"]), extra={"fields": fields})
        return
    line = json.dumps({"ts": round(time.time(), 3), "level": "INFO", "logger": log.name, **fields})
    with handler.lock or nullcontext():
        handler.stream.write(line + handler.terminator)
        handler.flush()


def _plain_handler() -> logging.StreamHandler | None:
    parent = log.parent
    if log.handlers or log.filters or not log.propagate or parent is None or parent.name != "deepserve":
        return None
    handlers = parent.handlers
    if len(handlers) != 1 or parent.filters or parent.propagate:
        return None
    handler = handlers[0]
    if type(handler) is not logging.StreamHandler or type(handler.formatter) is not JsonFormatter:
        return None
    return handler if not handler.filters and handler.level <= logging.INFO else None


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
        request_id = incoming[:128] or next_request_id()
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
            if client := scope.get(KEY_NAME):  # the API key's name, set by app/http/middleware/auth.py
                fields["client"] = client
            access(fields)
