"""Inference: runs a runtime's synchronous predict off the event loop, timed and counted; micro-batched where
configured. One per app (app.state.inference); it owns the app's batchers and closes them at shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.batching import MicroBatcher
from app.config import Settings
from app.families.runtime import Runtime
from app.metrics import Metrics


class Inference:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.batchers: dict[str, tuple[Runtime, MicroBatcher]] = {}  # model name -> (its runtime, its batcher)
        self.retired: list[MicroBatcher] = []  # replaced (model reloaded, or another event loop); closed at shutdown

    def observer(self, name: str):
        def observe(size: int, seconds: float) -> None:  # one model call, however many requests it served
            self.metrics.inference.labels(name).observe(seconds)
            self.metrics.batch_size.labels(name).observe(size)

        return observe

    def batcher(self, runtime: Runtime) -> MicroBatcher | None:
        """The model's batcher (one per model, made on first use), or None where settings leave batching off."""
        name = runtime.entry.name
        if name not in self.settings.batch_models or self.settings.max_batch_size <= 1:
            return None
        owner, batcher = self.batchers.get(name, (None, None))
        if batcher is None or owner is not runtime or batcher.loop not in (None, asyncio.get_running_loop()):
            if batcher is not None:
                self.retired.append(batcher)
            batcher = MicroBatcher(
                runtime.predict,
                self.settings.max_batch_size,
                self.settings.max_batch_wait_ms / 1000,
                self.observer(name),
                name,
            )
            self.batchers[name] = (runtime, batcher)
        return batcher

    async def __call__(self, runtime: Runtime, batch: list[Any]) -> list[Any]:
        """Outputs of `runtime.predict` for `batch`, in order."""
        batcher = self.batcher(runtime)
        if batcher is not None:  # settings.batch_models: concurrent requests share one model call
            return await batcher.submit(batch)
        started = time.perf_counter()
        outputs = await run_in_threadpool(runtime.predict, batch)
        if len(outputs) != len(batch):
            raise RuntimeError(
                f"{type(runtime).__name__}.predict returned {len(outputs)} outputs for {len(batch)} inputs"
            )
        self.observer(runtime.entry.name)(len(batch), time.perf_counter() - started)
        return outputs

    async def close(self) -> None:
        """Stop every batcher's background task (app shutdown)."""
        loop = asyncio.get_running_loop()
        for batcher in [*self.retired, *(b for _, b in self.batchers.values())]:
            if batcher.loop in (None, loop):
                await batcher.close()
        self.batchers.clear()
        self.retired.clear()
