"""Promotion: which trained version of a model the service serves, with a quality gate.

Training writes every run as a *candidate* (its own folder and model.json); only the first artifact of a model is
promoted by training itself (there is nothing to compare it with). `promote` moves a model's promoted.json to a
candidate when the candidate's headline metric (its family's `headline`, higher is better) is at least the
promoted version's, or when forced. The service serves the promoted version (a restart, or
`POST /admin/models/{name}/reload`, picks a new one up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.families import FAMILIES
from app.manifest import ManifestEntry, read_manifest, write_promoted


class PromotionRefused(Exception):
    """The candidate is worse than the promoted version by the headline metric (or it has no such metric)."""


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    previous: str | None
    headline: str
    before: float | None  # the previous version's headline metric
    after: float | None  # the candidate's


def headline(name: str) -> str:
    family = FAMILIES.get(name)
    return family.headline if family else "test_accuracy"


def metric(entry: ManifestEntry | None, key: str) -> float | None:
    value = entry.metrics.get(key) if entry else None
    return float(value) if isinstance(value, (int, float)) else None


def promote(models_dir: Path, name: str, version: str, force: bool = False) -> Promotion:
    """Serve `version` of `name` from now on (KeyError: no such artifact; PromotionRefused: worse, not forced)."""
    manifest = read_manifest(models_dir)
    found = {m.version: m for m in manifest.versions(name)}
    if version not in found:
        raise KeyError(f"no artifact {name} v{version} in {models_dir} (versions: {', '.join(found) or 'none'})")
    current = found.get(manifest.promoted.get(name, ""))
    key = headline(name)
    before, after = metric(current, key), metric(found[version], key)
    if not force and current is not None and current.version != version:
        if after is None or (before is not None and after < before):
            raise PromotionRefused(
                f"{name} v{version} has {key} {after} against {before} for the promoted v{current.version}; "
                "promote it anyway with --force"
                + (" (they were trained on different data)" if current.data != found[version].data else "")
            )
    previous = current.version if current else None
    write_promoted(models_dir, name, version, previous)
    return Promotion(name, version, previous, key, before, after)
