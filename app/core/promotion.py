"""Promotion: which trained version of a model the service serves, with a quality gate.

Training writes every run as a *candidate* (its own folder and model.json); only the first artifact of a model is
promoted by training itself (there is nothing to compare it with). `promote` moves a model's promoted.json to a
candidate when the candidate's headline metric (its family's `headline`, higher is better) is at least the
promoted version's, or when forced. The service serves the promoted version (a restart, or
`POST /admin/models/{name}/reload`, picks a new one up); the same gate guards that route's `?version=N`
(`force=true` overrides), since serving a version is a promotion in all but the pointer.

A promotion is a transaction: the gate, then a load and warm-up of the version (in the running service when the
caller gives one, else a scratch load in this process), and only once that worked the pointer. A version that
does not load leaves promoted.json (and its `previous`, the version the service falls back to at start-up when
the promoted one fails to load) exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.errors import PromotionRefused
from app.families import FAMILIES, open_runtime
from app.manifest import ManifestEntry, read_manifest, write_promoted

__all__ = ["LoadRefused", "Promotion", "PromotionFailed", "PromotionRefused", "check", "headline", "metric", "promote"]


class PromotionFailed(Exception):
    """The version did not load (or the pointer could not be written); the message says what is served now."""


class LoadRefused(Exception):
    """The running service refused to load the version; the message says how (its status, type and message)."""


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    previous: str | None  # the promoted version before (promoted.json's `previous` once this one is promoted)
    headline: str
    before: float | None  # the previous version's headline metric
    after: float | None  # the candidate's
    refusal: str = ""  # why the gate refuses it ("" when it passes)
    entry: ManifestEntry | None = None  # the candidate's
    current: str | None = None  # what promoted.json names now


def headline(name: str) -> str:
    family = FAMILIES.get(name)
    return family.headline if family else "test_accuracy"


def metric(entry: ManifestEntry | None, key: str) -> float | None:
    value = entry.metrics.get(key) if entry else None
    return float(value) if isinstance(value, (int, float)) else None


def check(models_dir: Path, name: str, version: str) -> Promotion:
    """The gate's verdict on serving `version` of `name` instead of its promoted version, writing nothing
    (KeyError: no such artifact). Refused: a headline metric below the promoted version's, or none while it has
    one. A model with no readable promoted version has nothing to compare with: any version passes."""
    manifest = read_manifest(models_dir)
    found = {m.version: m for m in manifest.versions(name)}
    if version not in found:
        raise KeyError(f"no artifact {name} v{version} in {models_dir} (versions: {', '.join(found) or 'none'})")
    promoted = manifest.promoted.get(name)
    current = found.get(promoted or "")
    key = headline(name)
    before, after = metric(current, key), metric(found[version], key)
    refusal = ""
    if current is not None and current.version != version:
        if after is None or (before is not None and after < before):
            refusal = f"{name} v{version} has {key} {after} against {before} for the promoted v{current.version}" + (
                " (they were trained on different data)" if current.data != found[version].data else ""
            )
    # Promoting the promoted version again keeps the version it replaced as the one to fall back to.
    previous = promoted if promoted != version else manifest.previous.get(name)
    return Promotion(name, version, previous, key, before, after, refusal, found[version], promoted)


def scratch_load(entry: ManifestEntry, models_dir: Path) -> None:
    """Load and warm `entry` in this process, as the service's registry does, and drop it (raises what the load
    raises: a missing or corrupt file, an unknown runtime)."""
    open_runtime(entry, Settings(models_dir=models_dir)).warmup()


def promote(
    models_dir: Path,
    name: str,
    version: str,
    force: bool = False,
    load: Callable[[ManifestEntry], object] | None = None,
    undo: Callable[[], str] | None = None,
) -> Promotion:
    """Serve `version` of `name` from now on: the gate (PromotionRefused unless forced), then `load` (default: a
    scratch load here; the CLI's --url asks the running service to reload it), then the pointer. KeyError: no such
    artifact. PromotionFailed: the load raised, and nothing changed; or the pointer could not be written after
    the load, and `undo` (the service back on the promoted version; it returns what it did) ran."""
    done = check(models_dir, name, version)
    assert done.entry is not None
    if done.refusal and not force:
        raise PromotionRefused(f"{done.refusal}; promote it anyway with --force")
    kept = f"promoted.json still names v{done.current}" if done.current else "nothing was promoted"
    try:
        (load or (lambda entry: scratch_load(entry, models_dir)))(done.entry)
    except Exception as exc:
        raise PromotionFailed(f"{name} v{version} was not promoted: {describe(exc)}; {kept}") from exc
    try:
        write_promoted(models_dir, name, version, done.previous)
    except OSError as exc:
        after = undo() if undo else ""
        raise PromotionFailed(
            f"{name} v{version} loaded but was not promoted: promoted.json could not be written "
            f"({type(exc).__name__}: {exc}); {kept}" + (f"; {after}" if after else "")
        ) from exc
    return done


def describe(exc: BaseException) -> str:
    """A load failure in one phrase: the service's own message when it refused, else the error's type and text."""
    text = " ".join(str(exc).split())  # one line, whatever the runtime's message holds
    text = text if len(text) <= 300 else text[:300] + "..."
    return text if isinstance(exc, LoadRefused) else f"it failed to load here ({type(exc).__name__}: {text})"
