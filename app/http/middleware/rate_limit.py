"""Per-client rate limit: a token bucket per API key name (or per client address without keys), 429 past it.

Checked from the headers alone, before the body is read, so a refused request costs almost nothing. Hand-written
(about 20 lines) rather than taken from a library: the `limits` package (slowapi's engine) has window counters,
not a token bucket, and its in-memory storage drops keys by expiry time, not by count; here the client map is
capped, so a flood of addresses cannot grow memory, and the clock can be injected for tests. Its keys are short and
fixed in size whatever a client sends: a key's name (at most 64 characters) or a normalised address
(app/http/client_address.py: the peer, or the client a trusted proxy names), so the table's memory is bounded too.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.metrics import Metrics
from app.errors import RateLimited
from app.http.api.errors import send_error
from app.http.client_address import ClientAddresses, bucket
from app.http.middleware.auth import KEY_NAME

EXEMPT = frozenset({"/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"})
MAX_CLIENTS = 10_000


class TokenBucketLimiter:
    """Each client's bucket holds up to `burst` tokens and refills at `per_second`; a request takes one.

    At most `max_clients` buckets are kept, least recently used evicted first: an evicted client starts again
    with a full bucket, which is what an idle client would have by then anyway."""

    def __init__(
        self, per_second: float, burst: int, max_clients: int = MAX_CLIENTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second, self.burst, self.max_clients, self.clock = per_second, burst, max_clients, clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, when counted)

    def acquire(self, client: str) -> float:
        """Take a token for `client`: 0.0 if it had one, else the seconds until it will (nothing taken)."""
        now = self.clock()
        tokens, then = self.buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.per_second
        self.buckets[client] = (tokens - 1 if wait == 0 else tokens, now)  # now the most recently used
        if len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait


def group(path: str) -> str:
    """The metrics label of a path: the model for /predict/<model>, else the first path segment."""
    parts = path.strip("/").split("/")
    return parts[1] if parts[0] == "predict" and len(parts) > 1 else parts[0]


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limiter: TokenBucketLimiter,
        metrics: Metrics,
        routes: Iterable[str],
        addresses: ClientAddresses,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.metrics = metrics
        self.addresses = addresses
        self.groups = frozenset(group(route) for route in routes)  # known labels only: bounded cardinality

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        name = scope.get(KEY_NAME)
        client = f"key:{name}" if name else f"address:{bucket(self.addresses.client(scope))}"
        wait = self.limiter.acquire(client)
        if wait > 0:
            label = group(scope["path"])
            self.metrics.rate_limited.labels(label if label in self.groups else "other").inc()
            seconds = max(1, math.ceil(wait))
            limits = {"per_second": self.limiter.per_second, "burst": self.limiter.burst}
            message = f"Too many requests from this client; retry after {seconds} s."
            error = RateLimited(message, limits, headers={"Retry-After": str(seconds)})
            await send_error(send, error, scope["path"])
            return
        await self.app(scope, receive, send)
