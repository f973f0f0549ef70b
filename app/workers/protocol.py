"""uvicorn's HTTP protocol (httptools) with the two timeouts it lacks, a hook when a connection closes, and the
response head and body written together (HeldHead).

uvicorn closes a keep-alive connection that stays idle after a response, but not one that never sends a request
nor one that stops halfway through its headers: each held a file descriptor for ever, and about 1,100 of them made
the service unreachable. Here a new connection is idle until its first byte (closed after the keep-alive timeout,
as after a response), and a request's headers must be complete within `header_timeout` seconds of its first byte,
else the client gets 408 `request_timeout` and the connection closes. The body has its own deadline
(app/http/middleware/body_limit.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import RequestTimeout, error_body


def timeout_response(seconds: float) -> bytes:
    error = RequestTimeout(
        f"The request headers did not arrive within {seconds:g} seconds (DEEPSERVE_HEADER_TIMEOUT_SECONDS).",
        {"timeout_seconds": seconds},
    )
    body = json.dumps(error_body(error.type, error.message, error.detail)).encode()
    head = (
        f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class Protocol(HttpToolsProtocol):
    header_timeout: float = 10.0  # set by the worker from settings
    on_close: Callable[[], None] = staticmethod(lambda: None)  # the worker tells the supervisor
    on_response: Callable[[], None] = staticmethod(lambda: None)  # the worker counts its requests

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.header_timer: asyncio.TimerHandle | None = None
        self.in_headers = False  # a request has begun and its headers are not complete yet
        # Idle until the first byte, exactly as between two requests (data_received cancels it).
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # A request whose headers did not all come in this read gets its deadline now (most come in one read: no
        # timer is made for them).
        if self.in_headers and self.header_timer is None and not self.transport.is_closing():
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_headers = True

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self._stop_header_timer()
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = HeldHead(self.transport)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        if self.cycle is not None and isinstance(self.cycle.transport, HeldHead):
            self.cycle.transport.flush()
        self.on_response()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)
        self.on_close()

    def _stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.write(timeout_response(self.header_timeout))
            self.transport.close()


class HeldHead:
    """A request's view of the transport that holds the response head until the body's first write, so both leave
    in one send: uvicorn writes them separately, two segments and two wake-ups for the client (measured: 3-6% less
    server CPU per digit and 3-9% more answers a second, two workers, wrk, c=1 to 32). The head is written at the
    latest when the response completes (a HEAD answer has no body write) or the connection closes; the interim
    `100 Continue` is never held."""

    __slots__ = ("transport", "head", "done")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport, self.head, self.done = transport, b"", False

    def write(self, data: bytes) -> None:
        if not self.done and not self.head and data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 1"):
            self.head = data
            return
        if self.head:
            data, self.head = self.head + data, b""
        self.done = True
        self.transport.write(data)

    def flush(self) -> None:
        if self.head:
            self.transport.write(self.head)
            self.head = b""
        self.done = True

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
