"""API keys: off until keys are configured; then every request but the probes needs one, else 401.

Keys come from DEEPSERVE_API_KEYS (plaintext, named `key-<first 8 hex of its SHA-256>`) and/or
DEEPSERVE_API_KEYS_FILE (`name:sha256hex` lines; only the digest is stored). A client sends
`Authorization: Bearer <key>` or `X-API-Key: <key>`. The presented key is hashed with SHA-256 and compared with
every stored digest by hmac.compare_digest, so the time taken says nothing about how close a guess was. SHA-256
without salt or stretching is right for long random keys (`secrets.token_urlsafe(32)`: 256 bits, nothing to
brute-force); it would be wrong for passwords people choose.

`python -m app.auth hash NAME` makes a new random key and the line to add to the keys file.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import send_error
from app.config import Settings
from app.errors import Unauthorized

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DIGEST = re.compile(r"[0-9a-f]{64}")
ALWAYS_OPEN = frozenset({"/health/live", "/health/ready"})  # probes
# The scope key holding the caller's key name, for the rate limit and the request log. Not scope["state"]: that
# dict may be shared by every request (asgi-lifespan does; the ASGI spec asks servers for a copy per request).
KEY_NAME = "deepserve.key_name"


def digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def read_keys_file(path: Path) -> dict[str, bytes]:
    """`name:sha256hex` per line; blank lines and `#` comments skipped. Anything else stops the service from
    starting (a plaintext key pasted by mistake must not be silently ignored or, worse, accepted)."""
    keys: dict[str, bytes] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, hexdigest = line.partition(":")
        if not NAME.fullmatch(name) or not DIGEST.fullmatch(hexdigest) or name in keys:
            # The line itself is never printed: it might be a plaintext key.
            raise ValueError(
                f"{path} line {number}: expected a unique `name:sha256hex` (64 lowercase hex digits); "
                "make one with `python -m app.auth hash NAME`"
            )
        keys[name] = bytes.fromhex(hexdigest)
    if not keys:
        raise ValueError(f"{path} holds no keys; make one with `python -m app.auth hash NAME`")
    return keys


def load_keys(settings: Settings) -> dict[str, bytes]:
    """Key name -> SHA-256 digest of the key; empty when authentication is off."""
    keys = {}
    for key in settings.api_keys:
        hashed = digest(key.encode())
        keys[f"key-{hashed.hex()[:8]}"] = hashed
    if settings.api_keys_file is not None:
        keys |= read_keys_file(settings.api_keys_file)
    return keys


def presented_key(scope: Scope) -> bytes:
    headers = dict(scope["headers"])
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() == b"bearer" and token.strip():
        return token.strip()
    return headers.get(b"x-api-key", b"").strip()


def unauthorized(invalid: bool) -> Unauthorized:
    """The 401; never echoes the key. RFC 6750's `error="invalid_token"` tells a wrong key from a missing one."""
    if invalid:
        return Unauthorized("The API key is not valid.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    message = "This service needs an API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`."
    return Unauthorized(message, headers={"WWW-Authenticate": "Bearer"})


class AuthMiddleware:
    """Checks the key before anything reads the request body and puts the key's name in scope[KEY_NAME]. Open paths
    (probes; /metrics and the docs unless closed by settings) are not checked: their callers count by address."""

    def __init__(
        self, app: ASGIApp, keys: dict[str, bytes], protect_metrics: bool, docs: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = ALWAYS_OPEN | docs | (frozenset() if protect_metrics else {"/metrics"})

    def client_name(self, key: bytes) -> str | None:
        hashed, found = digest(key), None
        for name, stored in self.keys.items():  # every digest, no early exit
            if hmac.compare_digest(hashed, stored):
                found = name
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        name = self.client_name(key) if key else None
        if name is None:
            await send_error(send, unauthorized(invalid=bool(key)))
            return
        scope[KEY_NAME] = name
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.auth", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("hash", help="make a random API key and its line for DEEPSERVE_API_KEYS_FILE")
    make.add_argument("name", help="the client's name (letters, digits, _ . -), logged as `client`")
    args = parser.parse_args(argv)
    if not NAME.fullmatch(args.name):
        parser.error("NAME: 1-64 letters, digits, _ . or -")
    key = secrets.token_urlsafe(32)
    print(f"key (give it to the client; it is shown only this once): {key}")
    print(f"line for DEEPSERVE_API_KEYS_FILE: {args.name}:{digest(key.encode()).hex()}")


if __name__ == "__main__":
    main()
