"""The model registry: reads the manifest, loads and warms each model, and owns readiness.

States: loading -> ready | failed. A model the deployment is configured to serve (in the manifest, or named in
DEEPSERVE_MODELS) must reach `ready` for the service to be ready; a failure is kept per model so the other
models keep serving. A known model family without an artifact is `not_installed`: listed, answering 503 with
how to install it, and not blocking readiness.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, overload

from app.config import Settings
from app.errors import ArtifactInvalid, InvalidInput, ModelNotFound, ModelNotInstalled, ModelNotReady, echo
from app.families import FAMILIES, open_runtime
from app.families.runtime import Runtime
from app.manifest import ENTRY_FILE, PROMOTED_FILE, ManifestEntry, read_manifest

log = logging.getLogger("deepserve.registry")
R = TypeVar("R", bound=Runtime)


class State(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    NOT_INSTALLED = "not_installed"


@dataclass
class ModelRecord:
    name: str
    state: State
    entry: ManifestEntry | None = None
    runtime: Runtime | None = None
    message: str = ""
    load_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str | None:
        """The task of a known family is its Family's (older manifests may say another name for it, e.g. the image
        family's "image-classification/transfer"); any other model's is its manifest entry's."""
        family = FAMILIES.get(self.name)
        return family.task if family else self.entry.task if self.entry else None

    @property
    def install(self) -> str:
        family = FAMILIES.get(self.name)
        return family.install if family else "see the README"


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records: dict[str, ModelRecord] = {}
        self.loaded = threading.Event()
        self.catalogue_error = ""
        self._reloading = threading.Lock()
        self._pinning = threading.Lock()
        self.pinned: OrderedDict[tuple[str, str], Runtime] = OrderedDict()  # (name, version) -> runtime, LRU last
        self.on_evict: Callable[[Runtime], None] = lambda runtime: None  # a pinned runtime dropped (its batcher)
        self._plan()

    def _read_catalogue(self) -> dict[str, ManifestEntry]:
        """The served entry (promoted, else newest) per model name. A missing or empty models folder, or an
        unreadable model.json or promoted.json, sets `catalogue_error` (the service is then not ready) and is
        logged once, with its cause, at ERROR."""
        folder = self.settings.models_dir
        try:
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is not a folder")
            manifest = read_manifest(folder)
            if manifest.problems:
                raise ValueError("; ".join(manifest.problems))
            if not manifest.models:
                raise ValueError(f"{folder} holds no <name>/<version>/{ENTRY_FILE}")
            served = manifest.served()
        except Exception as exc:  # A broken catalogue fails readiness, not the process.
            self.catalogue_error = (
                f"The models catalogue (DEEPSERVE_MODELS_DIR, each artifact's {ENTRY_FILE} and each model's "
                f"{PROMOTED_FILE}) is missing, unreadable, invalid or empty; train a model or point "
                "DEEPSERVE_MODELS_DIR at a models folder."
            )
            log.error("models catalogue unusable: %s: %s", type(exc).__name__, exc)
            return {}
        # Versions reloads chose since the service started (a worker started again serves what the others serve).
        for name, version in self.settings.served_versions.items():
            chosen = {e.version: e for e in manifest.versions(name)}.get(version)
            if chosen is not None:
                served[name] = chosen
        return served

    def _plan(self) -> None:
        """Decide, without loading anything, which models are configured and which are not installed."""
        latest = self._read_catalogue()
        configured = self.settings.models if self.settings.models is not None else sorted(latest)
        for name in configured:
            entry = latest.get(name)
            message = "" if entry else self.catalogue_error or f"no artifact for '{name}' in the manifest"
            self.records[name] = ModelRecord(name, State.LOADING if entry else State.FAILED, entry, message=message)
        for name in FAMILIES:
            if name not in self.records:
                hidden = name in latest  # in the manifest but left out of DEEPSERVE_MODELS
                message = "not enabled in DEEPSERVE_MODELS" if hidden else "no trained artifact installed"
                self.records[name] = ModelRecord(name, State.NOT_INSTALLED, latest.get(name), message=message)

    def load_all(self) -> None:
        try:
            for record in self.records.values():
                if record.state is State.LOADING:
                    self._load(record)
        finally:
            self.loaded.set()

    def _build(self, entry: ManifestEntry) -> Runtime:
        """A loaded, warmed-up runtime for `entry` (raises on a missing or corrupt artifact)."""
        runtime = open_runtime(entry, self.settings)
        runtime.warmup()
        return runtime

    def _load(self, record: ModelRecord) -> None:
        entry = record.entry
        assert entry is not None
        started = time.perf_counter()
        try:
            runtime = self._build(entry)
        except Exception as exc:  # The log gets the cause; clients get a stable message without paths.
            record.state, record.message = State.FAILED, "its artifact is missing or corrupt (the service log says why)"
            log.error("model %s v%s failed to load: %s: %s", entry.name, entry.version, type(exc).__name__, exc)
            return
        record.runtime, record.state, record.message = runtime, State.READY, ""
        record.load_seconds = round(time.perf_counter() - started, 3)
        log.info("model %s v%s ready in %.2fs", entry.name, entry.version, record.load_seconds)

    def entry(self, name: str, version: str | None = None) -> ManifestEntry:
        """The artifact a reload of `name` would serve: `version`, or the promoted one (ModelNotFound if none)."""
        manifest = read_manifest(self.settings.models_dir)
        found = {e.version: e for e in manifest.versions(name)}
        entry = found.get(version) if version is not None else manifest.served().get(name)
        if entry is None:
            wanted = f"version '{echo(version)}' of model" if version is not None else "model"
            raise ModelNotFound(
                f"No artifact of {wanted} '{echo(name)}' in the models folder.",
                {"model": name, "versions": sorted(found)},
            )
        return entry

    def prepare(self, entry: ManifestEntry) -> ModelRecord:
        """`entry` loaded and warmed beside what serves, not serving yet (ArtifactInvalid when it cannot load)."""
        started = time.perf_counter()
        with self._reloading:  # one load at a time
            try:
                runtime = self._build(entry)
            except Exception as exc:
                name = entry.name
                log.error("model %s v%s failed to reload: %s: %s", name, entry.version, type(exc).__name__, exc)
                served = self.records[name].entry if name in self.records else None
                raise ArtifactInvalid(
                    f"Model '{name}' version {entry.version} could not be loaded (the service log says why); "
                    + (f"version {served.version} keeps serving." if served else "nothing was serving it."),
                    {"model": name, "version": entry.version},
                ) from exc
        seconds = round(time.perf_counter() - started, 3)
        return ModelRecord(entry.name, State.READY, entry, runtime, load_seconds=seconds)

    def swap(self, record: ModelRecord) -> Runtime | None:
        """Serve `record` from now on; the runtime it replaces (the caller retires it). Requests in flight finish
        on the old runtime, later ones get the new one."""
        old = self.records.get(record.name)
        self.records = {**self.records, record.name: record}  # copy-on-write: readers see the old records or the new
        log.info("model %s v%s serving (loaded in %.2fs)", record.name, record.entry and record.entry.version,
                 record.load_seconds or 0.0)  # fmt: skip
        return old.runtime if old is not None else None

    def reload(self, name: str, version: str | None = None) -> ModelRecord:
        """Load `name` again from the models folder as it is now (its promoted version, or `version`) beside the
        runtime that is serving, and swap them once the new one is warm. A load that fails raises ArtifactInvalid
        and leaves the old one serving. (app/reloads.py does this across worker processes.)"""
        record = self.prepare(self.entry(name, version))
        self.swap(record)
        return record

    async def pin(self, runtime: R, version: str | None) -> R:
        """`runtime`, or its model at `version` (a request's X-Model-Version): a version other than the served one
        is loaded on first use (that request waits for it) and kept among the `max_pinned_versions` most recently
        used; 404 for a version not in the models folder."""
        if not version or version == runtime.entry.version:
            return runtime
        return await asyncio.to_thread(self._pinned, runtime.entry.name, version, type(runtime))

    def _pinned(self, name: str, version: str, cls: type[R]) -> R:
        with self._pinning:  # one load at a time, and never the same version twice
            runtime = self.pinned.get((name, version))
            if runtime is None:
                found = {e.version: e for e in read_manifest(self.settings.models_dir).versions(name)}
                entry = found.get(version)
                if entry is None or self.settings.max_pinned_versions == 0:
                    why = "pinning versions is off" if entry else "no such version in the models folder"
                    raise ModelNotFound(
                        f"Model '{name}' version '{echo(version)}' cannot be served ({why}).",
                        {"model": name, "version": version, "versions": sorted(found)},
                    )
                try:
                    runtime = self._build(entry)
                except Exception as exc:
                    log.error("model %s v%s failed to load: %s: %s", name, version, type(exc).__name__, exc)
                    raise ModelNotReady(
                        f"Model '{name}' version {version} failed to load (the service log says why).",
                        {"model": name, "version": version},
                    ) from exc
                self.pinned[(name, version)] = runtime
                while len(self.pinned) > self.settings.max_pinned_versions:
                    _, evicted = self.pinned.popitem(last=False)
                    self.on_evict(evicted)
            self.pinned.move_to_end((name, version))
        if not isinstance(runtime, cls):
            raise TypeError(f"model {name} v{version} is served by {type(runtime).__name__}, not {cls.__name__}")
        return runtime

    def unload(self, name: str) -> None:
        """Stop serving `name`: it is listed as not installed (503 with how to install it) until reloaded."""
        record = ModelRecord(name, State.NOT_INSTALLED, self.record(name).entry, message="unloaded")
        self.records = {**self.records, name: record}
        log.info("model %s unloaded", name)

    @property
    def ready(self) -> bool:
        configured = [r for r in self.records.values() if r.state is not State.NOT_INSTALLED]
        ok = self.loaded.is_set() and not self.catalogue_error
        return ok and all(r.state is State.READY for r in configured)

    def record(self, name: str) -> ModelRecord:
        if name not in self.records:
            raise ModelNotFound(f"Unknown model '{echo(name)}'.", {"known": sorted(self.records)})
        return self.records[name]

    @overload
    def for_task(self, task: str, requested: str | None = None) -> Runtime: ...
    @overload
    def for_task(self, task: str, requested: str | None, cls: type[R]) -> R: ...

    def for_task(self, task: str, requested: str | None = None, cls: type[Runtime] = Runtime) -> Runtime:
        """The runtime that answers `task`: the model the request names (404 if unknown, 422 if it does another
        task), else the task's default: its first registered family (app/families) that is ready and trained.
        Every family of a task is served by a runtime of class `cls` (TypeError otherwise: a wrong registration).
        With none ready, the error of the first one configured to serve (or of the first family) says why."""
        if requested is not None:
            found = self.record(requested).task
            if found != task:
                names = sorted(n for n, f in FAMILIES.items() if f.task == task)
                raise InvalidInput(
                    f"Model '{echo(requested)}' does not do {task}; use one of {', '.join(names)}.",
                    {"model": requested, "task": found, "models": names},
                )
            return self.runtime(requested, cls)
        names = [n for n, f in FAMILIES.items() if f.task == task and n in self.records]
        trained = [n for n in names if not self._random(self.records[n])] or names
        ready = [n for n in trained if self.records[n].state is State.READY]
        configured = [n for n in trained if self.records[n].state is not State.NOT_INSTALLED]
        return self.runtime((ready or configured or trained)[0], cls)

    @staticmethod
    def _random(record: ModelRecord) -> bool:
        """A --tiny test artifact (random weights) is served only to requests that name it, never by default."""
        return bool(record.entry and record.entry.metrics.get("random_weights"))

    @overload
    def runtime(self, name: str) -> Runtime: ...
    @overload
    def runtime(self, name: str, cls: type[R], version: str | None = None) -> R: ...

    def runtime(self, name: str, cls: type[Runtime] = Runtime, version: str | None = None) -> Runtime:
        """The ready runtime for `name` (of class `cls`; of `version` when given, 404 when another version is
        served), or the error that says why it cannot answer."""
        record = self.record(name)
        if record.state is State.READY and record.runtime is not None:
            if not isinstance(record.runtime, cls):
                raise TypeError(f"model {name} is served by {type(record.runtime).__name__}, not {cls.__name__}")
            served = record.runtime.entry.version
            if version is not None and version != served:
                raise ModelNotFound(
                    f"Model '{name}' version '{echo(version)}' is not served; version {served} is.",
                    {"model": name, "version": version, "served": served},
                )
            return record.runtime
        if record.state is State.NOT_INSTALLED:
            raise ModelNotInstalled(
                f"Model '{name}' is not installed ({record.message}). Install it with: {record.install}",
                {"model": name, "install": record.install},
            )
        if record.state is State.LOADING:
            raise ModelNotReady(f"Model '{name}' is still loading; retry shortly.", {"model": name})
        raise ModelNotReady(
            f"Model '{name}' failed to load ({record.message}). Train or restore it with: {record.install}",
            {"model": name, "install": record.install},
        )
