"""Reloads: `POST /admin/models/{name}/reload` loads a model's version beside the one serving and swaps them once it
is warm; requests in flight finish on the old runtime, later ones get the new one, none fails.

In one process that is all. Under `deepserve serve` (app/workers) every worker process takes part: the worker that
was asked resolves the version (the promoted one unless `?version=`), the supervisor asks every worker to
`prepare` it (load and warm it beside what it serves), and only when all have does it ask them to `commit` (swap);
if one fails or does not answer, all `abort` (drop what they loaded) and the reload fails as a whole with that
error. So the workers never serve different versions, and the answer tells the truth about all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from app.core.registry import ModelRecord, ModelRegistry


class Reloader:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        # Set by a worker of `deepserve serve` (app/workers/worker.py): runs a reload in every worker.
        self.coordinator: Callable[[str, str], Awaitable[None]] | None = None
        self.prepared: dict[str, ModelRecord] = {}  # reload id -> a loaded, warm record not yet serving
        self._turn = asyncio.Lock()  # reloads take turns in a process (binds to the loop at its first use)

    async def reload(self, name: str, version: str | None = None) -> ModelRecord:
        """Serve `version` of `name` (default: its promoted version) from now on, here and in every other worker;
        raises the error that stopped it (ModelNotFound, ArtifactInvalid, ...) with nothing changed anywhere."""
        entry = await asyncio.to_thread(self.registry.entry, name, version)
        if self.coordinator is not None:
            await self.coordinator(name, entry.version)
            return self.registry.record(name)
        async with self._turn:
            record = await asyncio.to_thread(self.registry.prepare, entry)
            self.registry.swap(record)  # the replaced runtime is retired: its batcher answers what it holds
            return record

    async def prepare(self, reload_id: str, name: str, version: str) -> None:
        """This process's part of a reload across workers: load and warm `version`, not serving it yet."""
        entry = await asyncio.to_thread(self.registry.entry, name, version)
        self.prepared[reload_id] = await asyncio.to_thread(self.registry.prepare, entry)

    async def commit(self, reload_id: str) -> None:
        record = self.prepared.pop(reload_id, None)
        if record is not None:
            self.registry.swap(record)

    def abort(self, reload_id: str) -> None:
        self.prepared.pop(reload_id, None)  # its runtime is freed with its last reference
