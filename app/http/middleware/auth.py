"""API keys and roles. Client keys (DEEPSERVE_API_KEYS) are off until configured; then every request but the
probes needs one, else 401. Admin keys (DEEPSERVE_ADMIN_KEYS) guard the routes that change what the service serves
(`/admin/...`): 401 without a valid key, 403 with a client key; an admin key works on every route. With no admin key
configured, those routes answer only requests made on this host (a loopback peer that is not a trusted proxy,
app/http/client_address.py), so a fresh service cannot have its models swapped from the network.

Keys come from DEEPSERVE_API_KEYS / DEEPSERVE_ADMIN_KEYS (plaintext, named `key-` / `admin-` and the first 8 hex of
their SHA-256) and/or DEEPSERVE_API_KEYS_FILE / DEEPSERVE_ADMIN_KEYS_FILE (`name:sha256hex` lines; only the digest
is stored). A client sends `Authorization: Bearer <key>` or `X-API-Key: <key>`. The presented key is hashed with
SHA-256 and compared with every stored digest of both roles by hmac.compare_digest, so the time taken says nothing
about how close a guess was, nor whether it was near an admin key. SHA-256 without salt or stretching is right for
long random keys (`secrets.token_urlsafe(32)`: 256 bits, nothing to brute-force); it would be wrong for passwords
people choose.

`python -m app.http.middleware.auth hash NAME` makes a new random key and the line to add to a keys file.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from starlette._utils import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.errors import Forbidden, ServeError, Unauthorized
from app.http.api.errors import send_error
from app.http.client_address import ClientAddresses

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DIGEST = re.compile(r"[0-9a-f]{64}")
ALWAYS_OPEN = frozenset({"/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"})  # probes
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
                "make one with `python -m app.http.middleware.auth hash NAME`"
            )
        keys[name] = bytes.fromhex(hexdigest)
    if not keys:
        raise ValueError(f"{path} holds no keys; make one with `python -m app.http.middleware.auth hash NAME`")
    return keys


@dataclass(frozen=True)
class Keys:
    """Key name -> SHA-256 digest of the key, per role; both empty when authentication is off."""

    clients: dict[str, bytes] = field(default_factory=dict)
    admins: dict[str, bytes] = field(default_factory=dict)


def plaintext_keys(keys: list[str], prefix: str) -> dict[str, bytes]:
    named = {}
    for key in keys:
        hashed = digest(key.encode())
        named[f"{prefix}-{hashed.hex()[:8]}"] = hashed
    return named


def load_keys(settings: Settings) -> Keys:
    clients = plaintext_keys(settings.api_keys, "key")
    if settings.api_keys_file is not None:
        clients |= read_keys_file(settings.api_keys_file)
    admins = plaintext_keys(settings.admin_keys, "admin")
    if settings.admin_keys_file is not None:
        admins |= read_keys_file(settings.admin_keys_file)
    # A name says who called (log, rate limit) and a key has one role: no name or key may be in both.
    if clients.keys() & admins.keys() or set(clients.values()) & set(admins.values()):
        raise ValueError("a key name or key is both a client key and an admin key; give each one role")
    return Keys(clients, admins)


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


def forbidden(local_only: bool) -> Forbidden:
    if local_only:
        message = (
            "This route changes what the service serves; with no admin key configured it answers only requests made "
            "on the service's own host. Set DEEPSERVE_ADMIN_KEYS (or DEEPSERVE_ADMIN_KEYS_FILE; "
            "`python -m app.http.middleware.auth "
            "hash NAME` makes a key) and send the key as `Authorization: Bearer <key>`."
        )
        return Forbidden(message)
    message = "This route changes what the service serves: it needs an admin key, not a client key."
    return Forbidden(message, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})


class AuthMiddleware:
    """Checks the key (and for admin routes its role) before anything reads the request body, and puts the key's
    name in scope[KEY_NAME]. Open paths (probes; /metrics and the docs unless closed by settings) are not checked:
    their callers count by address. Admin routes are told by their path's prefix as the router matches it (after
    any root path), so no spelling of a path reaches one unchecked."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Keys,
        addresses: ClientAddresses,
        protect_metrics: bool,
        docs: frozenset[str] = frozenset(),
        admin_prefix: str = "/admin",
    ) -> None:
        self.app = app
        self.keys = keys
        self.addresses = addresses
        self.open_paths = ALWAYS_OPEN | docs | (frozenset() if protect_metrics else {"/metrics"})
        self.admin_prefix = admin_prefix.rstrip("/")
        self.stored = [(name, stored, False) for name, stored in keys.clients.items()]
        self.stored += [(name, stored, True) for name, stored in keys.admins.items()]

    def client_name(self, key: bytes) -> tuple[str, bool] | None:
        """The key's name and whether it is an admin key; None for no valid key."""
        hashed, found = digest(key), None
        for name, stored, admin in self.stored:  # every digest, no early exit
            if hmac.compare_digest(hashed, stored):
                found = (name, admin)
        return found

    def is_admin_route(self, scope: Scope) -> bool:
        path = get_route_path(scope)
        return path == self.admin_prefix or path.startswith(self.admin_prefix + "/")

    def refusal(self, scope: Scope, admin_route: bool, key: bytes, found: tuple[str, bool] | None) -> ServeError | None:
        if found is None and (self.keys.clients or (admin_route and self.keys.admins)):
            return unauthorized(invalid=bool(key))
        if not admin_route:
            return None
        if self.keys.admins:
            return None if found is not None and found[1] else forbidden(local_only=False)
        return None if self.addresses.is_local(scope) else forbidden(local_only=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        admin_route = self.is_admin_route(scope)
        if not admin_route and (not self.keys.clients or scope["path"] in self.open_paths):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        found = self.client_name(key) if key else None
        refused = self.refusal(scope, admin_route, key, found)
        if refused is not None:
            await send_error(send, refused, scope["path"])
            return
        if found is not None:
            scope[KEY_NAME] = found[0]
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.http.middleware.auth", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser(
        "hash", help="make a random key and its line for DEEPSERVE_API_KEYS_FILE (or DEEPSERVE_ADMIN_KEYS_FILE)"
    )
    make.add_argument("name", help="the client's name (letters, digits, _ . -), logged as `client`")
    args = parser.parse_args(argv)
    if not NAME.fullmatch(args.name):
        parser.error("NAME: 1-64 letters, digits, _ . or -")
    key = secrets.token_urlsafe(32)
    print(f"key (give it to the client; it is shown only this once): {key}")
    print(f"line for DEEPSERVE_API_KEYS_FILE (or DEEPSERVE_ADMIN_KEYS_FILE): {args.name}:{digest(key.encode()).hex()}")


if __name__ == "__main__":
    main()
