"""Inference: the path of one request through admission, the worker pool and the model.

`serve` charges the runtime's `cost(request)` to the admission budget, decodes the request (on the pool when
decoding is CPU work), runs `predict` on the pool (micro-batched for the models settings name), and encodes
the response. Without a batcher, decoding and `predict` run in one call on one pool thread: each thread hop costs
about as much as a small model's whole work. One Inference per running app, built in its lifespan
(app/http/main.py), owns the two sized worker pools and the models' batchers: it watches the registry, attaches a
model's batchers when the registry announces it `loaded`, drains them when it is `retired` (replaced by a reload,
unloaded, a pinned version dropped), and closes them all at shutdown. The image pool (one thread per core) decodes
uploads and runs the image models: Pillow and numpy hold the GIL most of the time, and the digit cost 4-12% more CPU per
request with 8 threads than with 2. The model pool (8 threads) runs the text and series models, which spend their
time in ONNX Runtime without the GIL: unbatched MiniLM answered 180-190 reviews/s at c=32 with 8 threads, 144-148
with 2.
A large image's decoding (DEFERRED_CHARGE_BYTES or more of estimated memory) is charged to the memory budget
only when its turn on the image pool comes: at most one per image thread holds that charge, so concurrent
uploads of photos queue for the threads instead of filling the budget while they wait (and getting 429); one
whose client hung up meanwhile (the request's `probe`, from the web layer, raises) is dropped when its turn comes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

from app.config import Settings, cpu_cores
from app.core.batching import MicroBatcher, Outcome, TurnBatcher
from app.core.limiter import MB, ConcurrencyLimiter
from app.core.metrics import Metrics
from app.families.images import ImageUpload
from app.families.runtime import Runtime

# Raises (the web layer's ClientDisconnect, logged as 499) once the client that sent a request has hung up.
Probe = Callable[[], Awaitable[None]]

# A 28x28 digit costs ~1 MB and is charged at admission; a 1024x1024 photo ~21 MB waits for its turn.
DEFERRED_CHARGE_BYTES = 8 * MB
INLINE_HEADER_BYTES = 64 * 1024

T = TypeVar("T")
Req = TypeVar("Req")
Out = TypeVar("Out")


class Inference:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.image_threads = settings.image_workers or max(2, cpu_cores())
        self.pool = ThreadPoolExecutor(settings.inference_workers, thread_name_prefix="model")
        self.image_pool = ThreadPoolExecutor(self.image_threads, thread_name_prefix="image")
        self.image_turn = asyncio.Semaphore(self.image_threads)  # large decodes: one permit per image thread
        self.batchers: dict[Runtime, MicroBatcher] = {}  # the serving models the settings micro-batch
        self.turn_batchers: dict[Runtime, TurnBatcher] = {}  # small inputs batched per turn of the loop
        self.retiring: set[MicroBatcher] = set()  # retired, answering what they hold

    def observer(self, name: str) -> Callable[[int, float], None]:
        return lambda size, seconds: self.metrics.model_call(name, size, seconds)

    def loaded(self, runtime: Runtime) -> None:
        """A runtime starts serving (the registry announces it, from any thread, before a request can reach it):
        its batchers."""
        if runtime.batched():
            self._attach_micro(runtime)
        if runtime.decode_blocks:
            self._attach_turn(runtime)

    def _attach_micro(self, runtime: Runtime) -> MicroBatcher:
        batcher = self.batchers.get(runtime)
        if batcher is None:
            name, size, wait = runtime.entry.name, self.settings.max_batch_size, self.settings.max_batch_wait_ms / 1000
            batcher = MicroBatcher(runtime.predict, size, wait, self.observer(name), name, self.pool)
            self.batchers[runtime] = batcher
        return batcher

    def _attach_turn(self, runtime: Runtime) -> TurnBatcher:
        batcher = self.turn_batchers.get(runtime)
        if batcher is None:
            batcher = TurnBatcher(partial(self.decode_and_predict_each, runtime), self.settings.max_batch_size)
            self.turn_batchers[runtime] = batcher
        return batcher

    def retired(self, runtime: Runtime) -> None:
        """A runtime stops serving (replaced by a reload, unloaded, a pinned version dropped; from any thread): its
        batcher answers what it holds, then stops, and the runtime is freed with its last request."""
        self.turn_batchers.pop(runtime, None)  # it holds nothing between turns
        batcher = self.batchers.pop(runtime, None)
        if batcher is not None and batcher.loop is not None and not batcher.loop.is_closed():  # None: never used
            self.retiring.add(batcher)
            asyncio.run_coroutine_threadsafe(self._drain(batcher), batcher.loop)

    async def _drain(self, batcher: MicroBatcher) -> None:
        await batcher.drain()
        self.retiring.discard(batcher)

    def batcher(self, runtime: Runtime) -> MicroBatcher | None:
        """The runtime's micro-batcher, or None where settings leave batching off (attached on `loaded`; a runtime
        the registry never announced, a benchmark's or a test's, on first use)."""
        batcher = self.batchers.get(runtime)
        if batcher is None and runtime.batched():
            return self._attach_micro(runtime)
        return batcher

    def turn_batcher(self, runtime: Runtime) -> TurnBatcher:
        """The model's batcher for inputs worked on the event loop (app/core/batching.py TurnBatcher)."""
        return self.turn_batchers.get(runtime) or self._attach_turn(runtime)

    async def read_image(self, data: bytes, max_pixels: int) -> ImageUpload:
        """An uploaded image's header (ImageUpload.read): here on the loop for a body of at most
        INLINE_HEADER_BYTES (Pillow: ~10 us for a PNG, ~50 us for a JPEG photo; less than a thread hop costs), on
        the image pool for a larger one (some formats, multi-frame TIFF or ICO, scan more of the file to open it,
        and the loop must never wait on a large one)."""
        if len(data) <= INLINE_HEADER_BYTES:
            return ImageUpload.read(data, max_pixels)
        return await self.offload(ImageUpload.read, data, max_pixels, image=True)

    async def offload(self, fn: Callable[..., T], *args: Any, image: bool = False) -> T:
        """fn(*args) on the worker pool (image work: on the image pool)."""
        return await asyncio.get_running_loop().run_in_executor(self.image_pool if image else self.pool, fn, *args)

    def predict(self, runtime: Runtime, batch: list[Any]) -> list[Any]:
        """`runtime.predict(batch)` here (a pool thread), checked and timed."""
        started = time.perf_counter()
        outputs = runtime.predict(batch)
        if len(outputs) != len(batch):
            raise RuntimeError(
                f"{type(runtime).__name__}.predict returned {len(outputs)} outputs for {len(batch)} inputs"
            )
        self.metrics.model_call(runtime.entry.name, len(batch), time.perf_counter() - started)
        return outputs

    def decode_and_predict(self, runtime: Runtime[Req, Any, Out], request: Req) -> list[Out]:
        return self.predict(runtime, runtime.decode(request))

    def decode_and_predict_each(self, runtime: Runtime[Req, Any, Out], requests: list[Req]) -> list[Outcome]:
        """Each request decoded (a bad one fails alone), then all their inputs in one model call."""
        decoded: list[Outcome] = []
        for request in requests:
            try:
                decoded.append(runtime.decode(request))
            except Exception as exc:
                decoded.append(exc)
        inputs = [x for d in decoded if not isinstance(d, BaseException) for x in d]
        outputs = iter(self.predict(runtime, inputs) if inputs else [])
        return [d if isinstance(d, BaseException) else [next(outputs) for _ in d] for d in decoded]

    async def __call__(self, runtime: Runtime, batch: list[Any]) -> list[Any]:
        """Outputs of `runtime.predict` for `batch`, in order."""
        batcher = self.batcher(runtime)
        if batcher is not None:  # settings.batch_models: concurrent requests share one model call
            return await batcher.submit(batch)
        return await self.offload(self.predict, runtime, batch)

    async def in_calls(self, runtime: Runtime, inputs: list[Any], size: int, probe: Probe | None = None) -> list[Any]:
        """`runtime.predict`'s outputs for many inputs of one request (an explanation's), in model calls of at most
        `size`, each observed in /metrics as any call is; `probe` runs before each call and raises once the client
        has hung up, so the work stops within one call of it."""
        outputs: list[Any] = []
        for start in range(0, len(inputs), size):
            if probe is not None:
                await probe()
            outputs += await self(runtime, inputs[start : start + size])
        return outputs

    async def outputs(
        self, runtime: Runtime[Req, Any, Out], request: Req, limiter: ConcurrencyLimiter, probe: Probe | None = None
    ) -> list[Out]:
        """The typed outputs for `request`: cost -> decode -> predict, inside one admission slot. Decoding is where
        an image's memory goes, so it is charged too: at admission, or for a large image when its turn on the image
        pool comes. `serve` encodes them for the task endpoints; the Open Inference Protocol routes (app/oip) turn
        them into tensors. `probe` (optional) raises once the client has hung up: work that waited is dropped."""
        cost = runtime.cost(request)
        deferred = runtime.decode_blocks and cost >= DEFERRED_CHARGE_BYTES
        with limiter.slot(0 if deferred else cost, size=cost):
            return await self._work(runtime, request, limiter, cost, deferred, probe)

    async def outputs_each(
        self, runtime: Runtime[Req, Any, Out], requests: list[Req], limiter: ConcurrencyLimiter
    ) -> list[Out]:
        """The outputs of one client's several requests (a /v2 batch of images), in order, admitted as one
        prediction: one count slot, and run in groups (`_groups`), each group's cost charged while it runs. So a
        batch of any length is served on an idle service when each of its images fits the budget (413 when one
        alone is over it), and its memory stays within the budget; before, each image took a slot of its own, and a
        batch longer than a worker's share of the count cap was 429 even on an idle service."""
        if len(requests) == 1:  # the common case: one image, admitted as any prediction
            return await self.outputs(runtime, requests[0], limiter)
        costs = [runtime.cost(request) for request in requests]
        groups = self._groups(costs, self.image_threads if runtime.decode_blocks else len(requests), limiter.budget)
        deferred = [runtime.decode_blocks and cost >= DEFERRED_CHARGE_BYTES for cost in costs]
        outputs: list[Out] = []
        with limiter.slot(0, size=max((sum(costs[i] for i in group) for group in groups), default=0)):
            for group in groups:
                with limiter.charged(sum(costs[i] for i in group if not deferred[i])):  # large ones: in their turn
                    work = [self._work(runtime, requests[i], limiter, costs[i], deferred[i]) for i in group]
                    done = await asyncio.gather(*work, return_exceptions=True)  # all end before the charge does
                for outs in done:
                    if isinstance(outs, BaseException):
                        raise outs
                    outputs += outs
        return outputs

    @staticmethod
    def _groups(costs: list[int], most: int, budget: int | None) -> list[list[int]]:
        """Indices of `costs` in order, in groups of at most `most` (what the image pool runs at once) whose summed
        cost fits `budget`; one over the budget alone is a group of its own (admission makes it a 413)."""
        groups: list[list[int]] = [[]]
        held = 0
        for i, cost in enumerate(costs):
            if groups[-1] and (len(groups[-1]) >= most or (budget is not None and held + cost > budget)):
                groups.append([])
                held = 0
            groups[-1].append(i)
            held += cost
        return groups

    async def _work(
        self,
        runtime: Runtime[Req, Any, Out],
        request: Req,
        limiter: ConcurrencyLimiter,
        cost: int,
        deferred: bool,
        probe: Probe | None = None,
    ) -> list[Out]:
        """decode -> predict for an admitted request of estimated `cost`; a `deferred` one (a large image) is charged
        when its turn on the image pool comes; one the runtime calls cheap (`inline`: a small image) is worked here on
        the event loop, without a thread hop; one whose inputs go to its model in several calls (`call_inputs`: an
        explanation's) is probed before each."""
        if not runtime.decode_blocks:
            if runtime.call_inputs:
                return await self.in_calls(runtime.model(), runtime.decode(request), runtime.call_inputs, probe)
            return await self(runtime, runtime.decode(request))
        batched = self.batcher(runtime) is not None
        work = (runtime.decode, request) if batched else (self.decode_and_predict, runtime, request)  # one hop
        if deferred:
            async with self.image_turn:
                if probe is not None:
                    await probe()  # raises if the client hung up while this waited: nobody to answer
                with limiter.charged(cost):
                    done = await self.offload(*work, image=True)
        elif runtime.inline(request) and batched:  # decoded here; the settings' micro-batcher runs the model
            done = runtime.decode(request)
        elif runtime.inline(request):
            done = await self.turn_batcher(runtime).submit(request)  # decode and model in one pass
        else:
            done = await self.offload(*work, image=True)
        return await self(runtime, done) if batched else done

    async def serve(
        self, runtime: Runtime[Req, Any, Any], request: Req, limiter: ConcurrencyLimiter, probe: Probe | None = None
    ) -> BaseModel:
        """The response body for `request`: its `outputs`, encoded."""
        return runtime.encode(request, await self.outputs(runtime, request, limiter, probe))

    async def close(self) -> None:
        """Stop every batcher's background task and the pools' threads (the app's shutdown: the end of this
        executor; an app started again builds another, app/http/main.py)."""
        for batcher in [*self.batchers.values(), *self.retiring]:
            await batcher.close()
        self.batchers.clear()
        self.turn_batchers.clear()
        self.retiring.clear()
        for pool in (self.pool, self.image_pool):
            pool.shutdown(wait=False)
