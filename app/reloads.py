"""Reloads that reach every worker process (`deepserve serve --workers N`).

`POST /admin/models/{name}/reload` reloads the model in the process that receives it (load beside, swap when
warm, retire the old runtime). With more than one worker, that process then appends the request (model, version
or null for "the promoted one", a unique id) as one JSON line to `reloads.jsonl` in DEEPSERVE_DATA_DIR (writable;
the models folder may be mounted read-only), and every process watches the file: a stat about once a second, a read
only when it changed, and for each model the last request in the file applied the same way, unless it is the one
this process applied last. Reloads and catching up take turns in each process, so after concurrent reloads every
process serves what the last line asks for. A worker that starts later (uvicorn replaces one that died) applies
the file's requests once its models are loaded, so it serves what the others serve; `deepserve serve` empties the
file when it starts, so a restarted service serves the promoted versions again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from pathlib import Path

from app.inference import Inference
from app.registry import ModelRecord, ModelRegistry

log = logging.getLogger("deepserve.reloads")

LOG_FILE = "reloads.jsonl"
POLL_SECONDS = 1.0


class ReloadLog:
    """The append-only file of reload requests, and how far this process has read it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # bytes read so far (whole lines only)
        self.seen: tuple[int, int, int] | None = None  # (inode, size, mtime) at the last read

    def clear(self) -> None:
        """Start the file empty (`deepserve serve` at startup; raises OSError when the folder is not writable)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")

    def append(self, name: str, version: str | None) -> str:
        """Record a reload another process should apply; its id."""
        request_id = uuid.uuid4().hex
        line = json.dumps({"id": request_id, "name": name, "version": version}).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from several processes never mix
        finally:
            os.close(fd)
        return request_id

    def changed(self) -> bool:
        """Whether the file changed since the last `read_new` (a stat, no read)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (st.st_ino, st.st_size, st.st_mtime_ns) != self.seen

    def read_new(self) -> dict[str, dict]:
        """The last request per model among the lines written since the previous call."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size < self.offset:  # emptied by a new `deepserve serve`: read it from the start
                    self.offset = 0
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return {}
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        self.offset += len(complete)
        self.seen = (st.st_ino, self.offset, st.st_mtime_ns) if len(complete) == len(data) else None
        latest: dict[str, dict] = {}
        for line in complete.splitlines():
            try:
                request = json.loads(line)
                latest[str(request["name"])] = request
            except (ValueError, KeyError, TypeError):
                log.error("skipped an unreadable line of %s: %r", self.path, line[:200])
        return latest


class Reloader:
    """This process's reloads: applied here, recorded in the shared log (when there is one), and caught up from it."""

    def __init__(self, registry: ModelRegistry, inference: Inference, log_file: ReloadLog | None) -> None:
        self.registry, self.inference, self.log = registry, inference, log_file
        self.applied: dict[str, str] = {}  # model -> id of the logged request this process applied last
        self._turn = asyncio.Lock()  # reloads and catch-ups take turns (binds to the loop at its first use)

    async def _apply(self, name: str, version: str | None) -> ModelRecord:
        """Load beside the serving runtime, swap when warm (registry.reload), then retire the old one."""
        old = self.registry.record(name).runtime
        record = await asyncio.to_thread(self.registry.reload, name, version)
        if old is not None:
            await self.inference.retire(old)
        return record

    async def reload(self, name: str, version: str | None) -> ModelRecord:
        """Reload `name` (its promoted version, or `version`) here and, once that worked, in every other process."""
        async with self._turn:
            record = await self._apply(name, version)
            if self.log is not None:
                self.applied[name] = await asyncio.to_thread(self.log.append, name, version)
            return record

    async def catch_up(self) -> None:
        """Apply the reloads other processes recorded since the last call (the last one per model)."""
        assert self.log is not None
        async with self._turn:
            for name, request in (await asyncio.to_thread(self.log.read_new)).items():
                if self.applied.get(name) == request["id"]:
                    continue
                self.applied[name] = request["id"]  # tried once: a version that fails here is not retried every second
                try:
                    await self._apply(name, request["version"])
                except Exception as exc:  # the process keeps serving what it served; the log says why
                    log.error("shared reload of %s v%s failed here: %s: %s", name, request["version"],
                              type(exc).__name__, exc)  # fmt: skip

    async def watch(self) -> None:
        """Catch up about once a second, once this process's models are loaded (the lifespan cancels it)."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if self.log is not None and self.registry.loaded.is_set() and self.log.changed():
                    await self.catch_up()
            except OSError as exc:  # an unreadable log must not stop the watching; the next change is read again
                log.error("cannot read %s: %s: %s", self.log and self.log.path, type(exc).__name__, exc)
