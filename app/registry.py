"""The model registry: reads the manifest, loads and warms each model, and owns readiness.

States: loading -> ready | failed. A model the deployment is configured to serve (in the manifest, or named in
DEEPSERVE_MODELS) must reach `ready` for the service to be ready; a failure is kept per model so the other
models keep serving. A known model family without an artifact is `not_installed`: listed, answering 503 with
how to install it, and not blocking readiness.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, overload

from app.config import Settings
from app.errors import ArtifactInvalid, InvalidInput, ModelNotFound, ModelNotInstalled, ModelNotReady, echo
from app.families import FAMILIES, RUNTIMES
from app.families.runtime import Runtime
from app.manifest import MANIFEST_FILE, Manifest, ManifestEntry, read_manifest

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
        self._plan()

    def _read_catalogue(self) -> dict[str, ManifestEntry]:
        """The newest entry per model name. A missing, unreadable, invalid or empty manifest sets
        `catalogue_error` (the service is then not ready) and is logged once, with its cause, at ERROR."""
        path = self.settings.models_dir / MANIFEST_FILE
        try:
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist")
            latest = read_manifest(self.settings.models_dir).latest()
            if not latest:
                raise ValueError(f"{path} lists no model")
            return latest
        except Exception as exc:  # A broken catalogue fails readiness, not the process.
            self.catalogue_error = (
                f"The models catalogue ({MANIFEST_FILE} in DEEPSERVE_MODELS_DIR) is missing, unreadable, invalid "
                "or empty; train a model or point DEEPSERVE_MODELS_DIR at a models folder."
            )
            log.error("models catalogue unusable: %s: %s", type(exc).__name__, exc)
            return {}

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
        runtime_cls = RUNTIMES.get(entry.runtime)
        if runtime_cls is None:
            raise ValueError(f"unknown runtime '{entry.runtime}' (known: {sorted(RUNTIMES)})")
        runtime = runtime_cls(entry, self.settings.models_dir / entry.path, self.settings)
        runtime.load()
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

    def reload(self, name: str, version: str | None = None) -> ModelRecord:
        """Load `name` again from the manifest as it is now (its newest entry, or `version`) beside the runtime that
        is serving, and swap them once the new one is warm: requests in flight finish on the old runtime, later
        ones get the new one, none waits or fails. A load that fails raises and leaves the old one serving."""
        entries = [e for e in read_manifest(self.settings.models_dir).models if e.name == name]
        if version is not None:
            entries = [e for e in entries if e.version == version]
        if not entries:
            raise ModelNotFound(f"No artifact of model '{echo(name)}' in the manifest.", {"model": name})
        entry = Manifest(models=entries).latest()[name]
        started = time.perf_counter()
        with self._reloading:  # one reload at a time: two would race to swap
            try:
                runtime = self._build(entry)
            except Exception as exc:
                log.error("model %s v%s failed to reload: %s: %s", name, entry.version, type(exc).__name__, exc)
                served = self.records[name].entry if name in self.records else None
                raise ArtifactInvalid(
                    f"Model '{name}' version {entry.version} could not be loaded (the service log says why); "
                    + (f"version {served.version} keeps serving." if served else "nothing was serving it."),
                    {"model": name, "version": entry.version},
                ) from exc
            seconds = round(time.perf_counter() - started, 3)
            record = ModelRecord(name, State.READY, entry, runtime, load_seconds=seconds)
            self.records = {**self.records, name: record}  # copy-on-write: readers see the old records or the new
        log.info("model %s v%s reloaded in %.2fs", name, entry.version, record.load_seconds)
        return record

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
