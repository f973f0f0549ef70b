"""Run a runtime's synchronous predict off the event loop, timed and counted."""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.metrics import Metrics
from app.runtimes.base import Runtime


async def infer(runtime: Runtime, batch: list[Any], metrics: Metrics) -> list[Any]:
    started = time.perf_counter()
    outputs = await run_in_threadpool(runtime.predict, batch)
    if len(outputs) != len(batch):
        raise RuntimeError(f"{type(runtime).__name__}.predict returned {len(outputs)} outputs for {len(batch)} inputs")
    metrics.inference.labels(runtime.entry.name).observe(time.perf_counter() - started)
    metrics.batch_size.labels(runtime.entry.name).observe(len(batch))
    return outputs
