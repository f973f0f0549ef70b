"""What a prediction needs besides its model, as one object: the registry, the settings, the admission limiter and
the inference pool. The task routes get it as one dependency (app/http/api/deps.py: FastAPI spends ~40 us per dependency
per request, and four of them cost more than the digit model's call); the Open Inference Protocol adapters
(app/oip/adapters.py) take the same object."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.core.inference import Inference
from app.core.limiter import ConcurrencyLimiter
from app.core.registry import ModelRegistry
from app.families.family import R, Task


@dataclass(frozen=True)
class Serving:
    registry: ModelRegistry
    settings: Settings
    limiter: ConcurrencyLimiter
    inference: Inference

    async def runtime(self, task: Task[R], choice: str | None = None, version: str | None = None) -> R:
        """The runtime answering `task` for a request whose selector is `choice` (registry.for_task), at `version`
        when the request pins one (X-Model-Version: loaded on first use)."""
        return await self.registry.pin(self.registry.for_task(task, choice), version)
