"""The one way in: every route (the task endpoints, the explanations, the stream points, the Open Inference Protocol
adapters in app/oip, the fast lane) serves a request through one Serving: `runtime` picks the model of a task,
`serve` (and `explain`) admit the request under this serving's own limits and run it through the executor
(app/core/inference.py: cost -> decode -> predict -> encode).

It holds what a request needs besides its model: the registry, the settings, the admission limiters (predictions,
and the explanations' own cap) and the executor. The routes get it as their one dependency (app/http/api/deps.py:
FastAPI spends ~40 us per dependency per request, and four of them cost more than the digit model's call).

The executor lives from `start` to `stop` (the app's lifespan, on its event loop) and watches the registry: the
registry owns which runtimes serve, the executor their batchers and pools. An app started again (tests, Ray Serve
replicas) builds a new one, so nothing in the executor outlives its event loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from app.config import Settings
from app.core.inference import Inference, Probe
from app.core.limiter import ConcurrencyLimiter
from app.core.metrics import Metrics
from app.core.registry import ModelRegistry
from app.families.family import R, Task
from app.families.images import ImageUpload
from app.families.runtime import Runtime

T = TypeVar("T")


@dataclass
class Serving:
    registry: ModelRegistry
    settings: Settings
    limiter: ConcurrencyLimiter  # predictions: every request's slot and memory
    explain_limiter: ConcurrencyLimiter  # explanations (each costs several predictions' compute): a slot each too
    metrics: Metrics
    inference: Inference = field(init=False)  # the executor (worker pools and batchers), from `start` to `stop`

    def start(self) -> None:
        """A new executor, watching the registry from now on (it is told of the runtimes serving already)."""
        self.inference = Inference(self.settings, self.metrics)
        self.registry.watch(self.inference)

    async def stop(self) -> None:
        """Stop the executor's batchers and pools (before the event loop closes)."""
        self.registry.unwatch(self.inference)
        await self.inference.close()

    async def runtime(self, task: Task[R], choice: str | None = None, version: str | None = None) -> R:
        """The runtime answering `task` for a request whose selector is `choice` (registry.for_task), at `version`
        when the request pins one (X-Model-Version: loaded on first use)."""
        return await self.registry.pin(self.registry.for_task(task, choice), version)

    async def serve(self, runtime: Runtime, request: Any, probe: Probe | None = None) -> BaseModel:
        """The response body for `request`, admitted by this serving's limiter; `probe` (the web layer's) raises once
        the client has hung up, so work that waited for its turn is dropped."""
        return await self.inference.serve(runtime, request, self.limiter, probe)

    async def explain(
        self, runtime: R, explainer: Callable[[R], Runtime], request: Any, probe: Probe | None = None
    ) -> BaseModel:
        """An explanation of `runtime`'s answer: `explainer(runtime)` (made on the worker pool: an image explainer
        loads its export on first use) served as `serve` serves, inside one of the explanation slots."""
        with self.explain_limiter.slot():
            served = await self.inference.offload(explainer, runtime)
            return await self.inference.serve(served, request, self.limiter, probe)

    async def outputs(self, runtime: Runtime, request: Any) -> list[Any]:
        """The typed outputs for `request`, admitted as `serve` admits it (the protocol adapters make tensors)."""
        return await self.inference.outputs(runtime, request, self.limiter)

    async def outputs_each(self, runtime: Runtime, requests: list[Any]) -> list[Any]:
        """The outputs of one client's several requests (a /v2 batch of images), admitted by their cost."""
        return await self.inference.outputs_each(runtime, requests, self.limiter)

    async def predict(self, runtime: Runtime, inputs: list[Any], cost: int) -> list[Any]:
        """`runtime.predict`'s outputs for inputs already decoded (a /v2 request's pixels), admitted at `cost`."""
        with self.limiter.slot(cost):
            return await self.inference(runtime, inputs)

    async def read_image(self, data: bytes) -> ImageUpload:
        """An uploaded image's header (decoding refuses more than DEEPSERVE_MAX_IMAGE_PIXELS)."""
        return await self.inference.read_image(data, self.settings.max_image_pixels)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on the worker pool: a route's blocking work that is not a model's (a stream store's reads)."""
        return await self.inference.offload(fn, *args)
