"""Backpressure: a cap on predictions in flight; past it a request gets 429 at once instead of queueing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Overloaded


class ConcurrencyLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        # Only the event loop thread touches the counter, so no lock is needed.
        if self.in_flight >= self.limit:
            raise Overloaded(f"Too many requests in flight (limit {self.limit}); retry with backoff.")
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
