"""Refuse request bodies over the configured size: by Content-Length before reading, else while streaming."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import send_error
from app.errors import PayloadTooLarge


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self, size: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is {size}; the limit is {self.max_bytes} bytes.", {"max_bytes": self.max_bytes}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(send, self._error(f"{int(declared)} bytes"))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._error("over the limit")
            return message

        await self.app(scope, limited_receive, send)
