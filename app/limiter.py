"""Backpressure: admission control on the predictions in flight, by count and by estimated working memory.

A request is admitted only once its body is in (a slow upload holds nothing here) and only if both fit:
  - the count cap, `DEEPSERVE_MAX_CONCURRENT_REQUESTS` predictions in flight;
  - the cost budget, `DEEPSERVE_MAX_INFLIGHT_MB` of estimated working memory (app/costs.py) summed over them.
What does not fit now gets 429 `overloaded` at once with `Retry-After` (never a queue). A request whose own
estimate alone is over the budget could never fit: it gets 413 `payload_too_large` (retrying cannot help), so
memory stays bounded by the budget whatever a client sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Overloaded, PayloadTooLarge

MB = 2**20
RETRY_AFTER_SECONDS = 1  # most predictions finish well within a second; clients should back off further on repeats


class ConcurrencyLimiter:
    def __init__(self, limit: int, budget_bytes: int | None = None, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        self.limit = limit
        self.budget = budget_bytes  # None: no cost budget, the count cap alone
        self.retry_after = retry_after
        self.in_flight = 0
        self.cost_in_flight = 0  # bytes of estimated working memory admitted and not yet released

    def _overloaded(self, message: str) -> Overloaded:
        return Overloaded(message, headers={"Retry-After": str(self.retry_after)})

    def check(self, cost: int = 0) -> None:
        """Raise the error `slot(cost)` would raise now; admit nothing."""
        if self.budget is not None and cost > self.budget:
            raise PayloadTooLarge(
                f"This request needs an estimated {cost / MB:.0f} MB of working memory, more than the service "
                f"admits at once ({self.budget / MB:.0f} MB, DEEPSERVE_MAX_INFLIGHT_MB); send a smaller image, "
                "fewer or shorter texts, or a shorter series.",
                {"estimated_mb": round(cost / MB, 1), "max_inflight_mb": round(self.budget / MB, 1)},
            )
        if self.in_flight >= self.limit:
            raise self._overloaded(f"Too many requests in flight (limit {self.limit}); retry with backoff.")
        if self.budget is not None and self.cost_in_flight + cost > self.budget:
            raise self._overloaded(
                "The service's memory budget for requests in flight is in use; retry with backoff."
            )

    @contextmanager
    def slot(self, cost: int = 0) -> Iterator[None]:
        """Hold one prediction slot and `cost` bytes of the budget until the block exits (also on an exception)."""
        # Only the event loop thread touches the counters, so no lock is needed.
        cost = max(0, int(cost))
        self.check(cost)
        self.in_flight += 1
        self.cost_in_flight += cost
        try:
            yield
        finally:
            self.in_flight -= 1
            self.cost_in_flight -= cost
