"""Run a runtime's synchronous predict off the event loop, timed and counted; micro-batched where configured."""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.batching import batcher_for
from app.metrics import Metrics
from app.runtimes.base import Runtime


async def infer(runtime: Runtime, batch: list[Any], metrics: Metrics) -> list[Any]:
    name = runtime.entry.name

    def observe(size: int, seconds: float) -> None:  # one model call, however many requests it served
        metrics.inference.labels(name).observe(seconds)
        metrics.batch_size.labels(name).observe(size)

    batcher = batcher_for(runtime, observe)
    if batcher is not None:  # settings.batch_models: concurrent requests share one model call
        return await batcher.submit(batch)
    started = time.perf_counter()
    outputs = await run_in_threadpool(runtime.predict, batch)
    if len(outputs) != len(batch):
        raise RuntimeError(f"{type(runtime).__name__}.predict returned {len(outputs)} outputs for {len(batch)} inputs")
    observe(len(batch), time.perf_counter() - started)
    return outputs
