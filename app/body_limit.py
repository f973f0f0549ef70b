"""Bound every request body in size and in time, where it is received (pure ASGI, before any route runs).

Size: over `max_bytes` is refused by Content-Length before reading (413), else while streaming (413).
Time: the whole body must arrive within `timeout` seconds, counted from the app's first read of it; a stalled
or trickling upload gets 408 `request_timeout` with `Connection: close`, so it holds a connection for a bounded
time and never an admission slot (routes take their slot only once the body is in).
Memory: the memory a body takes while it arrives and, once complete, while it is parsed (app/costs.py body_cost)
is reserved on the limiter's budget as it grows, until the request ends; when the budget is in use, that is a
429 (with `Connection: close` when the body was not all read) instead of the bytes.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import send_error
from app.costs import body_cost
from app.errors import PayloadTooLarge, RequestTimeout, ServeError
from app.limiter import ConcurrencyLimiter


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_bytes: int, timeout: float | None = None, limiter: ConcurrencyLimiter | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.limiter = limiter

    def _error(self, size: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is {size}; the limit is {self.max_bytes} bytes.", {"max_bytes": self.max_bytes}
        )

    def _timeout(self, received: int) -> RequestTimeout:
        return RequestTimeout(
            f"The request body did not arrive within {self.timeout:g} seconds (DEEPSERVE_BODY_TIMEOUT_SECONDS); "
            "send it without pausing.",
            {"timeout_seconds": self.timeout, "received_bytes": received},
            headers={"Connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(send, self._error(f"{int(declared)} bytes"), scope["path"])
            return
        received = reserved = 0
        deadline: float | None = None
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, reserved, deadline, complete
            if complete or self.timeout is None:  # after the body only http.disconnect can come: no deadline
                message = await receive()
            else:
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.timeout
                try:
                    message = await asyncio.wait_for(receive(), max(deadline - now, 0.0))
                except TimeoutError:
                    raise self._timeout(received) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise self._error("over the limit")
                if self.limiter is not None:
                    wanted = body_cost(received, headers.get(b"content-type", b""), complete)
                    if wanted > reserved:
                        try:
                            reserved += self.limiter.reserve(wanted - reserved)
                        except ServeError as exc:
                            if not complete:
                                exc.headers["Connection"] = "close"  # the rest of the body will not be read
                            raise
            return message

        try:
            await self.app(scope, limited_receive, send)
        finally:
            if reserved and self.limiter is not None:
                self.limiter.release(reserved)
