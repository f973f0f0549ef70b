"""The model registry: reads the manifest, loads and warms each model, and owns readiness.

States: loading -> ready | failed. A model the deployment is configured to serve (in the manifest, or named in
DEEPSERVE_MODELS) must reach `ready` for the service to be ready; a failure is kept per model so the other
models keep serving. A known model family without an artifact is `not_installed`: listed, answering 503 with
how to install it, and not blocking readiness.

Start-up fallback: when the version a model should serve (its promoted version, app/core/promotion.py) fails to load,
or has no readable model.json, the registry serves the last version known to have served instead: promoted.json's
`previous` (the version promoted before it). No older version is tried: one that was never promoted may be a
candidate the gate refused, and serving it unasked would hide the fault behind a worse model. A model without
promoted.json (a folder from older code) serves its newest version, and falls back to the next newest in turn (each
was the newest, so served, before the next was trained). A fallback is logged as ONE ERROR line (what failed, why,
what serves instead) and shown in `/models` (`fallback`: wanted and serving version) and `/health/ready`. A model
serving its fallback is ready: it answers, and a 503 would take every replica sharing the models folder out of
service for a fault an operator fixes with `deepserve promote` or a reload; `/health/ready` says `degraded`.
A model with an unreadable promoted.json is failed (what it should serve is unknown); an unreadable model.json of
a version it does not serve is logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, overload

from app.config import Settings
from app.errors import (
    ArtifactInvalid,
    InvalidInput,
    ModelNotFound,
    ModelNotInstalled,
    ModelNotReady,
    Overloaded,
    echo,
)
from app.families import FAMILIES, FIXED_DEFAULTS, open_runtime
from app.families.runtime import Runtime
from app.manifest import ENTRY_FILE, PROMOTED_FILE, Manifest, ManifestEntry, read_manifest, version_key

log = logging.getLogger("deepserve.registry")
R = TypeVar("R", bound=Runtime)


class State(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    NOT_INSTALLED = "not_installed"


@dataclass
class Plan:
    """What start-up tries for one model, in order (the versions to load; see the module's docstring)."""

    wanted: str | None
    tries: list[ManifestEntry]
    missing: str = ""  # why the wanted version is not among `tries` (its model.json or promoted.json), for clients
    causes: str = ""  # ... and the files' errors, for the log
    fallback_reason: str = "the version promoted before it"


@dataclass
class ModelRecord:
    name: str
    state: State
    entry: ManifestEntry | None = None
    runtime: Runtime | None = None
    message: str = ""
    load_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    wanted: str | None = None  # the version the models folder asks for, when a fallback serves instead

    @property
    def fallback(self) -> bool:
        """Serving another version than the one asked for, because that one failed to load at start-up."""
        return self.wanted is not None and self.entry is not None and self.entry.version != self.wanted

    @property
    def task(self) -> str | None:
        """The task of a known family is its Family's (older manifests may say another name for it, e.g. the image
        family's "image-classification/transfer"); any other model's is its manifest entry's."""
        family = FAMILIES.get(self.name)
        return family.task if family else self.entry.task if self.entry else None

    @property
    def install(self) -> str:
        family = FAMILIES.get(self.name)
        return family.install if family else "see docs/models.md"


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records: dict[str, ModelRecord] = {}
        self.loaded = threading.Event()
        self.catalogue_error = ""
        self._reloading = threading.Lock()
        self._pinning = threading.Lock()
        self.pinned: OrderedDict[tuple[str, str], Runtime] = OrderedDict()  # (name, version) -> runtime, LRU last
        self._pinned_loads: dict[str, float] = {}  # name -> when its last pinned-version load ended (monotonic)
        self.on_evict: Callable[[Runtime], None] = lambda runtime: None  # a pinned runtime dropped (its batcher)
        self._plans: dict[str, Plan] = {}
        self._plan()

    def _read_catalogue(self) -> Manifest | None:
        """The models folder's catalogue. A missing or empty models folder, or an unreadable legacy manifest.json,
        sets `catalogue_error` (the service is then not ready) and is logged once, with its cause, at ERROR; an
        unreadable file in one model's folder concerns that model only (`_plan_one`)."""
        folder = self.settings.models_dir
        try:
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is not a folder")
            manifest = read_manifest(folder)
            unattributed = [p for p in manifest.problems if not any(p in b for b in manifest.broken.values())]
            if unattributed:
                raise ValueError("; ".join(unattributed))
            if not manifest.models:
                raise ValueError("; ".join(manifest.problems) or f"{folder} holds no <name>/<version>/{ENTRY_FILE}")
            return manifest
        except Exception as exc:  # A broken catalogue fails readiness, not the process.
            self.catalogue_error = (
                f"The models catalogue (DEEPSERVE_MODELS_DIR, each artifact's {ENTRY_FILE} and each model's "
                f"{PROMOTED_FILE}) is missing, unreadable, invalid or empty; train a model or point "
                "DEEPSERVE_MODELS_DIR at a models folder."
            )
            log.error("models catalogue unusable: %s: %s", type(exc).__name__, exc)
            return None

    def _plan(self) -> None:
        """Decide, without loading anything, which models are configured, which are not installed, and which
        versions each configured one tries."""
        manifest = self._read_catalogue()
        known = sorted({m.name for m in manifest.models} | set(manifest.broken)) if manifest else []
        configured = self.settings.models if self.settings.models is not None else known
        for name in configured:
            plan = self._plan_one(manifest, name) if manifest else None
            if plan is not None and plan.tries:
                self._plans[name] = plan
                self.records[name] = ModelRecord(name, State.LOADING, plan.tries[0], wanted=plan.wanted)
                continue
            message = self.catalogue_error or f"no artifact for '{name}' in the manifest"
            if plan is not None and plan.missing:
                message = f"{plan.missing} (the service log says why)"
                log.error("model %s cannot be served: %s: %s", name, plan.missing, plan.causes)
            self.records[name] = ModelRecord(name, State.FAILED, message=message, wanted=plan.wanted if plan else None)
        served = manifest.served() if manifest else {}
        for name in FAMILIES:
            if name not in self.records:
                hidden = name in served  # in the manifest but left out of DEEPSERVE_MODELS
                message = "not enabled in DEEPSERVE_MODELS" if hidden else "no trained artifact installed"
                self.records[name] = ModelRecord(name, State.NOT_INSTALLED, served.get(name), message=message)

    def _plan_one(self, manifest: Manifest, name: str) -> Plan:
        """The versions start-up tries for `name`: the one reloads chose since the service started (a worker started
        again serves what the other workers serve), else the wanted one (promoted, else newest), then fallbacks."""
        plan = self._plan_promoted(manifest, name)
        chosen = {e.version: e for e in manifest.versions(name)}.get(self.settings.served_versions.get(name, ""))
        if chosen is not None:
            plan.wanted, plan.missing = chosen.version, ""
            plan.tries = [chosen, *(e for e in plan.tries if e.version != chosen.version)]
        return plan

    @staticmethod
    def _plan_promoted(manifest: Manifest, name: str) -> Plan:
        """The versions start-up tries for `name` from the models folder: the wanted one (promoted, else newest),
        then its fallbacks."""
        found = {e.version: e for e in manifest.versions(name)}
        broken = manifest.broken.get(name, [])
        if any(p.startswith(f"{name}/{PROMOTED_FILE}:") for p in broken):
            return Plan(None, [], missing=f"its {PROMOTED_FILE} is unreadable", causes="; ".join(broken))
        wanted = manifest.wanted(name)
        if name not in manifest.promoted:  # no promoted.json: the newest, then the next newest in turn
            newest_first = sorted(found.values(), key=lambda e: version_key(e.version), reverse=True)
            plan = Plan(wanted, newest_first, fallback_reason="the next newest version")
            if not found:
                plan.missing, plan.causes = f"it has no readable {ENTRY_FILE}", "; ".join(broken)
                return plan
        else:
            previous = manifest.previous.get(name)
            plan = Plan(wanted, [found[previous]] if previous in found and previous != wanted else [])
            if wanted in found:
                plan.tries.insert(0, found[wanted])
            else:
                plan.missing = f"its promoted version {wanted} has no readable {ENTRY_FILE}"
                plan.causes = "; ".join(broken) or "no such version in the models folder"
                return plan
        if broken:  # files of versions it does not serve
            log.error("model %s: skipped unreadable files: %s", name, "; ".join(broken))
        return plan

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
        """Load the record's plan in turn: the wanted version, then its fallbacks. One ERROR line when the wanted
        version does not serve: what failed and why, and what serves instead (or that nothing does)."""
        plan = self._plans[record.name]
        failures = [f"{plan.missing}: {plan.causes}"] if plan.missing else []
        for entry in plan.tries:
            started = time.perf_counter()
            try:
                runtime = self._build(entry)
            except Exception as exc:  # The log gets the cause; clients get a stable message without paths.
                cause = f"{type(exc).__name__}: {exc}"
                failures.append(cause if not failures else f"its fallback v{entry.version} failed too: {cause}")
                continue
            record.entry, record.runtime, record.state, record.message = entry, runtime, State.READY, ""
            record.load_seconds = round(time.perf_counter() - started, 3)
            if record.fallback:
                record.message = (
                    f"version {plan.wanted} failed to load (the service log says why); serving version "
                    f"{entry.version}, {plan.fallback_reason}"
                )
                log.error(
                    "model %s v%s failed to load (%s); serving v%s instead, %s",
                    record.name, plan.wanted, "; ".join(failures), entry.version, plan.fallback_reason,
                )  # fmt: skip
            log.info("model %s v%s ready in %.2fs", entry.name, entry.version, record.load_seconds)
            return
        record.state, record.message = State.FAILED, "its artifact is missing or corrupt (the service log says why)"
        log.error("model %s v%s failed to load: %s", record.name, plan.wanted, "; ".join(failures))

    def entry(self, name: str, version: str | None = None) -> ManifestEntry:
        """The artifact a reload of `name` would serve: `version`, or the promoted one. ArtifactInvalid when that
        version's model.json (or, for the promoted one, promoted.json) is unreadable: never another version in its
        place; ModelNotFound when there is no such version."""
        manifest = read_manifest(self.settings.models_dir)
        found = {e.version: e for e in manifest.versions(name)}
        wanted = version if version is not None else manifest.wanted(name)
        entry = found.get(wanted) if wanted is not None else None
        unreadable = self._unreadable(manifest, name, version)
        if unreadable:
            causes = "; ".join(manifest.broken.get(name, [])) or "no such version in the models folder"
            log.error("model %s cannot be reloaded: %s: %s", name, unreadable, causes)
            served = self.records[name].entry if name in self.records else None
            raise ArtifactInvalid(
                f"Model '{echo(name)}' cannot be reloaded: {unreadable} (the service log says why); "
                + (f"version {served.version} keeps serving." if served else "nothing was serving it."),
                {"model": name, "version": wanted},
            )
        if entry is None:
            asked = f"version '{echo(version)}' of model" if version is not None else "model"
            raise ModelNotFound(
                f"No artifact of {asked} '{echo(name)}' in the models folder.",
                {"model": name, "versions": sorted(found)},
            )
        return entry

    def prepare(self, entry: ManifestEntry) -> ModelRecord:
        """`entry` loaded and warmed beside what serves, not serving yet (ArtifactInvalid when it cannot load)."""
        name = entry.name
        started = time.perf_counter()
        with self._reloading:  # one load at a time
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
        return ModelRecord(name, State.READY, entry, runtime, load_seconds=seconds)

    def swap(self, record: ModelRecord) -> Runtime | None:
        """Serve `record` from now on; the runtime it replaces (the caller retires it). Requests in flight finish
        on the old runtime, later ones get the new one, none waits or fails."""
        old = self.records.get(record.name)
        self.records = {**self.records, record.name: record}  # copy-on-write: readers see the old records or the new
        version = record.entry.version if record.entry else None
        log.info("model %s v%s serving (loaded in %.2fs)", record.name, version, record.load_seconds or 0.0)
        return old.runtime if old is not None else None

    def reload(self, name: str, version: str | None = None) -> ModelRecord:
        """Load `name` again from the models folder as it is now (its promoted version, or `version`: see `entry`)
        beside the runtime that is serving, and swap them once the new one is warm. A load that fails raises
        ArtifactInvalid and leaves the old one serving. (app/core/reloads.py does this across worker processes.)"""
        record = self.prepare(self.entry(name, version))
        self.swap(record)
        return record

    @staticmethod
    def _unreadable(manifest: Manifest, name: str, version: str | None) -> str:
        """Why the version a reload asks for (`version`, else the promoted one) cannot be known from the models
        folder, or "": an unreadable promoted.json, or no readable model.json for a version promoted.json names or
        whose folder (<name>/<version>/, as training writes it) holds an unreadable one."""
        broken = manifest.broken.get(name, [])
        if version is None:
            if any(p.startswith(f"{name}/{PROMOTED_FILE}:") for p in broken):
                return f"its {PROMOTED_FILE} is unreadable"
            promoted = manifest.promoted.get(name)
            if promoted is not None and promoted not in {e.version for e in manifest.versions(name)}:
                return f"its promoted version {echo(promoted)} has no readable {ENTRY_FILE}"
        elif version not in {e.version for e in manifest.versions(name)}:
            if any(p.startswith(f"{name}/{version}/{ENTRY_FILE}:") for p in broken):
                return f"version {echo(version)} has no readable {ENTRY_FILE}"
        return ""

    async def pin(self, runtime: R, version: str | None) -> R:
        """`runtime`, or its model at `version` (a request's X-Model-Version): a version other than the served one
        is loaded on first use (that request waits for it) and kept among the `max_pinned_versions` most recently
        used; 404 for a version not in the models folder. Loads are seconds of CPU for the larger models, so one
        model loads a pinned version at most once per `pinned_load_interval_seconds`: a request that needs another
        load sooner gets 429 with Retry-After (a version already loaded still answers)."""
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
                self._may_load_pinned(name, version)
                started = time.perf_counter()
                try:
                    runtime = self._build(entry)
                except Exception as exc:
                    log.error("model %s v%s failed to load: %s: %s", name, version, type(exc).__name__, exc)
                    raise ModelNotReady(
                        f"Model '{name}' version {version} failed to load (the service log says why).",
                        {"model": name, "version": version},
                    ) from exc
                finally:  # a failed load cost its CPU too
                    self._pinned_loads[name] = time.monotonic()
                seconds = time.perf_counter() - started
                log.info("model %s v%s loaded for requests pinning it in %.2fs", name, version, seconds)
                self.pinned[(name, version)] = runtime
                while len(self.pinned) > self.settings.max_pinned_versions:
                    _, evicted = self.pinned.popitem(last=False)
                    self.on_evict(evicted)
            self.pinned.move_to_end((name, version))
        if not isinstance(runtime, cls):
            raise TypeError(f"model {name} v{version} is served by {type(runtime).__name__}, not {cls.__name__}")
        return runtime

    def _may_load_pinned(self, name: str, version: str) -> None:
        """Overloaded (429, Retry-After) when `name` loaded a pinned version less than the interval ago."""
        interval = self.settings.pinned_load_interval_seconds
        last = self._pinned_loads.get(name)
        wait = 0.0 if last is None else last + interval - time.monotonic()
        if wait > 0:
            loaded, seconds = sorted(v for n, v in self.pinned if n == name), math.ceil(wait)
            raise Overloaded(
                f"Model '{name}' version '{echo(version)}' is not loaded, and this model loads a pinned version at "
                f"most once every {interval:g} s (DEEPSERVE_PINNED_LOAD_INTERVAL_SECONDS); retry in {seconds} s, "
                f"or pin a loaded version ({', '.join(loaded) or 'none'}) or none.",
                {"model": name, "version": version, "loaded": loaded},
                headers={"Retry-After": str(seconds)},
            )

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
        return self.runtime(self.default(task), cls)

    def default(self, task: str) -> str:
        """The model that answers `task` when a request names none (see for_task; /models marks it)."""
        if task in FIXED_DEFAULTS:
            return FIXED_DEFAULTS[task]
        names = [n for n, f in FAMILIES.items() if f.task == task and n in self.records]
        trained = [n for n in names if not self._random(self.records[n])] or names
        ready = [n for n in trained if self.records[n].state is State.READY]
        configured = [n for n in trained if self.records[n].state is not State.NOT_INSTALLED]
        return (ready or configured or trained)[0]

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
