"""Browser security headers: `X-Content-Type-Options: nosniff` on every response (a browser never guesses a type
the service did not state), and on every HTML page `X-Frame-Options: DENY` (no page may be framed: clickjacking)
and a Content-Security-Policy.

The playground's policy allows only its own static files and its calls to this service: a script injected into the
page could neither run inline nor load or send anything elsewhere. The docs pages (Swagger UI, ReDoc) load their
scripts and style from this service too (app/http/api/docs.py), and Swagger UI starts from an inline script: their
policy allows exactly the inline scripts the page holds (by SHA-256 of each, computed from the page as it is sent,
so a root path or a FastAPI upgrade that changes them keeps working), inline styles (ReDoc writes its own) and blob:
workers (ReDoc's search). tests/test_docs_browser.py renders both in chromium with every other origin refused.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette._utils import get_route_path
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BASE = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
PAGE_POLICY = f"{BASE}; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
DOCS_POLICY = (
    f"{BASE}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "script-src 'self'"
)
NOSNIFF = (b"x-content-type-options", b"nosniff")
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_policy(page: bytes) -> str:
    hashes = [base64.b64encode(hashlib.sha256(script).digest()).decode() for script in INLINE_SCRIPT.findall(page)]
    return " ".join([DOCS_POLICY, *(f"'sha256-{h}'" for h in hashes)])


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, docs: frozenset[str]) -> None:
        self.app = app
        self.docs = docs  # the docs pages' paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = get_route_path(scope) in self.docs
        held: Message | None = None  # a docs page's start, until its body (one message) is hashed

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                # One pass over the raw headers (MutableHeaders cost a few us on every answer; HTML pages are rare).
                raw = list(message.get("headers", ()))
                html = any(name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in raw)
                message["headers"] = [*(h for h in raw if h[0].lower() != b"x-content-type-options"), NOSNIFF]
                if html:
                    headers = MutableHeaders(scope=message)
                    headers["X-Frame-Options"] = "DENY"
                    if docs:
                        held = message
                        return
                    headers["Content-Security-Policy"] = PAGE_POLICY
            elif held is not None:
                MutableHeaders(scope=held)["Content-Security-Policy"] = docs_policy(message.get("body", b""))
                await send(held)
                held = None
            await send(message)

        await self.app(scope, receive, send_with_headers)
