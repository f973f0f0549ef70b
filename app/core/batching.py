"""Adaptive micro-batching (MLServer-style): concurrent requests to one model share one model call.

Each submitted item gets a future and joins the model's queue. One background task per model (started lazily
inside the running event loop) takes the first waiting item, then keeps collecting until the batch holds
`max_batch_size` items or `max_batch_wait` seconds have passed since that first item, runs ONE synchronous
model call for the whole batch in a worker thread, and hands each caller its own output. A failed call sets
the exception on every future of that batch. While a batch runs, new requests queue up, so under load the
next batch is already full when the model is free (the batch size adapts to the load); a lone request waits
at most `max_batch_wait`.

Worth it for models whose cost per call is dominated by fixed overhead and that vectorise over the batch
(transformers with dynamic padding); not for models that answer in well under a millisecond (the digit CNN),
where the wait costs more than it saves. Settings choose which models batch (`DEEPSERVE_BATCH_MODELS`);
app/core/inference.py owns one batcher per model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

log = logging.getLogger("deepserve.batching")

Observer = Callable[[int, float], None]  # (batch size, seconds of the model call)


class MicroBatcher:
    def __init__(
        self,
        predict: Callable[[list[Any]], list[Any]],
        max_batch_size: int = 32,
        max_batch_wait: float = 0.005,
        observe: Observer | None = None,
        name: str = "",
        executor: Executor | None = None,  # where model calls run (None: the event loop's default executor)
    ) -> None:
        if max_batch_size < 1 or max_batch_wait < 0:
            raise ValueError("max_batch_size must be >= 1 and max_batch_wait >= 0")
        self.predict, self.max_batch_size, self.max_batch_wait = predict, max_batch_size, max_batch_wait
        self.observe, self.name, self.executor = observe, name, executor
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[tuple[Any, asyncio.Future]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.calls = 0  # model calls made, for tests and benchmarks
        self.running = 0  # batches in their model call now

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self.loop is not loop:  # a closed one restarts
            raise RuntimeError(f"batcher {self.name!r} belongs to another event loop")
        if self._task is None or self._task.done():
            self.loop, self._wakeup = loop, asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"batcher-{self.name}")

    async def submit(self, items: list[Any]) -> list[Any]:
        """Outputs for `items`, in order, computed in whichever batches they land in."""
        self._start()
        assert self.loop is not None and self._wakeup is not None
        futures = [self.loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures, strict=True))
        self._wakeup.set()
        return list(await asyncio.gather(*futures))

    async def _next_batch(self) -> list[tuple[Any, asyncio.Future]]:
        assert self.loop is not None and self._wakeup is not None
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = self.loop.time() + self.max_batch_wait
        while len(self._pending) < self.max_batch_size:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        size = min(self.max_batch_size, len(self._pending))
        batch = [self._pending.popleft() for _ in range(size)]
        return [(item, future) for item, future in batch if not future.done()]  # skip cancelled callers

    async def _run(self) -> None:
        assert self.loop is not None
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            items = [item for item, _ in batch]
            started = time.perf_counter()
            self.running += 1
            try:
                outputs = await self.loop.run_in_executor(self.executor, self.predict, items)
                if len(outputs) != len(items):
                    raise RuntimeError(f"{self.name}: predict returned {len(outputs)} outputs for {len(items)} inputs")
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self.calls += 1
                self.running -= 1
            if self.observe is not None:
                self.observe(len(items), time.perf_counter() - started)
            for (_, future), output in zip(batch, outputs, strict=True):
                if not future.done():
                    future.set_result(output)

    async def drain(self, poll: float = 0.005) -> None:
        """Close once every submitted item has its answer (a model being replaced: no caller is dropped)."""
        while self._pending or self.running:
            await asyncio.sleep(poll)
        await self.close()

    async def close(self) -> None:
        """Stop the background task; callers still waiting get CancelledError."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._pending:
            _, future = self._pending.popleft()
            future.cancel()


Outcome = list[Any] | BaseException  # one request's outputs, or what stopped it


class TurnBatcher:
    """Requests for one model that reach it in the same turn of the event loop share one pass of `work`, run on the
    loop at the end of that turn (for work cheap enough to run there: a small digit, app/core/inference.py).

    No timer: a lone request waits only for the rest of the turn it arrived in, so c=1 costs nothing (0.435 vs
    0.439 ms of server CPU per digit), while under concurrency the requests whose bodies arrived together are
    decoded one after another and go through the model in one call: 16-19% less CPU per digit at c=8 and 28-30%
    less at c=32, 20-42% more answers a second (two workers, wrk, medians of 5 alternating 3 s runs; more than the
    model call's own saving, 34 -> 25 us an input, because the model's code and weights stay in cache for the
    batch instead of being evicted by the HTTP work between requests). `work(requests)` returns one Outcome per
    request, in order: a request whose input is bad fails alone."""

    def __init__(self, work: Callable[[list[Any]], list[Outcome]], max_batch_size: int) -> None:
        self.work, self.max_batch_size = work, max_batch_size
        self.waiting: list[tuple[Any, asyncio.Future]] = []

    async def submit(self, request: Any) -> list[Any]:
        loop = asyncio.get_running_loop()
        if not self.waiting:
            loop.call_soon(self._run)  # after the callbacks already queued for this turn: the others join first
        future = loop.create_future()
        self.waiting.append((request, future))
        if len(self.waiting) >= self.max_batch_size:
            self._run()
        return await future

    def _run(self) -> None:
        batch, self.waiting = self.waiting, []
        live = [(request, future) for request, future in batch if not future.done()]  # skip cancelled callers
        if not live:
            return
        try:
            outcomes = self.work([request for request, _ in live])
        except Exception as exc:  # the model call itself failed: every request of the batch gets it
            outcomes = [exc] * len(live)
        for (_, future), outcome in zip(live, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
