"""Bound every request body in size and in time, where it is received (pure ASGI, before any route runs).

Size: over `max_bytes` is refused by Content-Length before reading (413), else while streaming (413).
Time: the whole body must arrive within `timeout` seconds, counted from the app's first read of it; a stalled
or trickling upload gets 408 `request_timeout` with `Connection: close`, so it holds a connection for a bounded
time and never an admission slot (routes take their slot only once the body is in).
Memory: the memory a body takes while it arrives and, once complete, while it is parsed (app/core/costs.py body_cost)
is reserved on the limiter's budget as it grows, until the request ends; when the budget is in use, that is a
429 (with `Connection: close` when the body was not all read) instead of the bytes.
Stalled bodies: bytes still arriving may hold at most 1/ARRIVING_SHARE of the budget (a quarter: 192 MB of the
default 768 per service; at least one body of the size limit); past that, a body's next bytes get 429 with
`Connection: close`. A body is charged to that part only until its last byte is in. So uploads stalled just
short of the size limit, however many, can make other slow uploads wait but never hold the rest of the budget: a
prediction whose body is in is admitted as on an idle service (before, 64 of them took the whole budget and every
prediction got 429 until they timed out). Chosen over a shorter idle timeout between chunks (a trickle of a byte
a second defeats it, and it only shortens the hold) and over a per-client cap (clients behind one proxy share an
address).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.costs import body_cost
from app.core.limiter import ConcurrencyLimiter
from app.errors import Overloaded, PayloadTooLarge, RequestTimeout, ServeError
from app.http.api.errors import send_error

ARRIVING_SHARE = 4  # bytes still arriving may hold this fraction (1/4) of the limiter's budget, no more


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_bytes: int, timeout: float | None = None, limiter: ConcurrencyLimiter | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.limiter = limiter
        budget = limiter.budget if limiter is not None else None
        # A quarter of the budget, and room for at least one body of the size limit (a small budget's quarter may not
        # hold one: it would never arrive)
        one_body = body_cost(max_bytes, b"", complete=False)
        self.arriving_budget = None if budget is None else max(budget // ARRIVING_SHARE, one_body)
        self.arriving = 0  # bytes of the budget held by bodies not complete yet (only the event loop touches it)

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

    def _arriving_full(self) -> Overloaded:
        return Overloaded(
            "Request bodies still arriving hold their part of the memory budget (a quarter of "
            "DEEPSERVE_MAX_INFLIGHT_MB); retry with backoff.",
            headers={"Retry-After": str(self.limiter.retry_after if self.limiter else 1), "Connection": "close"},
        )

    def _charge(self, wanted: int, held: int, complete: bool) -> int:
        """Reserve what the body wants beyond what it `held`, within the arriving part while it is incomplete."""
        assert self.limiter is not None
        more = wanted - held
        if not complete and self.arriving_budget is not None and self.arriving + more > self.arriving_budget:
            raise self._arriving_full()
        try:
            return self.limiter.reserve(more)
        except ServeError as exc:
            if not complete:
                exc.headers["Connection"] = "close"  # the rest of the body will not be read
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:  # bytes.isdigit(): ASCII digits only
            await send_error(send, self._error(f"{int(declared)} bytes"), scope["path"])
            return
        received = reserved = arriving = 0  # arriving: the part of `reserved` on the arriving part of the budget
        deadline: float | None = None
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, reserved, arriving, deadline, complete
            if complete or self.timeout is None:  # after the body only http.disconnect can come: no deadline
                message = await receive()
            else:  # asyncio.timeout_at: no task per read (wait_for made one: ~13 us of each request's CPU)
                deadline = deadline if deadline is not None else asyncio.get_running_loop().time() + self.timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
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
                        more = self._charge(wanted, reserved, complete)
                        reserved += more
                        if not complete:
                            arriving += more
                            self.arriving += more
                    if complete and arriving:  # all in: its charge stays on the budget, off the arriving part
                        self.arriving -= arriving
                        arriving = 0
            return message

        try:
            await self.app(scope, limited_receive, send)
        finally:
            self.arriving -= arriving
            if reserved and self.limiter is not None:
                self.limiter.release(reserved)
