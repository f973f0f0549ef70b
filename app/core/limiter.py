"""Backpressure: admission control on the work in flight, by count and by estimated working memory.

A prediction is admitted only once its body is in (a slow upload holds nothing here) and only if both fit:
  - the count cap, `DEEPSERVE_MAX_CONCURRENT_REQUESTS` predictions in flight;
  - the cost budget, `DEEPSERVE_MAX_INFLIGHT_MB` of estimated working memory (app/core/costs.py) summed over the
    predictions in flight and the request bodies being parsed (app/http/middleware/body_limit.py reserves each
    complete body).
What does not fit now gets 429 `overloaded` at once with `Retry-After` (never a queue). A request whose own estimate
alone is over the budget could never fit: it gets 413 `payload_too_large` (retrying cannot help), so memory stays
bounded by the budget whatever a client sends. One wait is allowed: a large image's decoding is charged when one of
the few image threads is about to run it (app/core/inference.py), so uploads waiting for those threads hold only their
count slot and their body, and the count cap bounds how many wait. With several worker processes each has its own
limiter holding its `share` of both numbers, so together they stay within them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.errors import Overloaded, PayloadTooLarge

MB = 2**20
RETRY_AFTER_SECONDS = 1  # most predictions finish well within a second; clients should back off further on repeats


def share(total: int, workers: int) -> int:
    """One of `workers` processes' part of a service-wide limit: total // workers, at least 1. The parts add up to
    at most the total (a part is stricter, never looser, the safe side for a limit), except that no process gets
    less than one (a total of 1 with 2 workers admits 2)."""
    return max(1, total // workers)


class ConcurrencyLimiter:
    def __init__(
        self,
        limit: int,
        budget_bytes: int | None = None,
        retry_after: int = RETRY_AFTER_SECONDS,
        on_release: Callable[[int], None] | None = None,
    ) -> None:
        self.limit = limit
        self.budget = budget_bytes  # None: no cost budget, the count cap alone
        self.retry_after = retry_after
        self.on_release = on_release  # called with each released cost (app/core/memory.py trims after bursts)
        self.in_flight = 0
        self.cost_in_flight = 0  # bytes of estimated working memory admitted and not yet released

    def _overloaded(self, message: str) -> Overloaded:
        return Overloaded(message, headers={"Retry-After": str(self.retry_after)})

    def check_size(self, cost: int) -> None:
        """413 when `cost` alone is over the whole budget: it could never fit, so retrying cannot help."""
        if self.budget is not None and cost > self.budget:
            raise PayloadTooLarge(
                f"This request needs an estimated {cost / MB:.0f} MB of working memory, more than the service "
                f"admits at once ({self.budget / MB:.0f} MB per process: DEEPSERVE_MAX_INFLIGHT_MB shared by its "
                "DEEPSERVE_WORKERS processes); send a smaller image, fewer or shorter texts, or a shorter series.",
                {"estimated_mb": round(cost / MB, 1), "max_inflight_mb": round(self.budget / MB, 1)},
            )

    def reserve(self, cost: int) -> int:
        """Charge `cost` bytes to the budget (not to the count) or raise 429/413; `release` it when done."""
        cost = max(0, int(cost))
        self.check_size(cost)
        if self.budget is not None and self.cost_in_flight + cost > self.budget:
            raise self._overloaded("The service's memory budget for work in flight is in use; retry with backoff.")
        self.cost_in_flight += cost
        return cost

    def release(self, cost: int) -> None:
        self.cost_in_flight -= cost
        if self.on_release is not None:
            self.on_release(cost)

    @contextmanager
    def charged(self, cost: int) -> Iterator[None]:
        """`cost` bytes of the budget (429/413 as `reserve`) until the block exits (also on an exception)."""
        cost = self.reserve(cost)
        try:
            yield
        finally:
            self.release(cost)

    @contextmanager
    def slot(self, cost: int = 0, size: int | None = None) -> Iterator[None]:
        """Hold one prediction slot and `cost` bytes of the budget until the block exits (also on an exception).
        `size` (default: `cost`) is the most the request will need: over the whole budget it is 413 at once, even
        when the request charges it later (app/core/inference.py charges a large image's decoding in its turn)."""
        # Only the event loop thread touches the counters, so no lock is needed.
        self.check_size(max(0, int(cost if size is None else size)))  # 413 before 429: waiting would not help
        if self.in_flight >= self.limit:
            raise self._overloaded(f"Too many requests in flight (limit {self.limit}); retry with backoff.")
        with self.charged(cost):
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1
