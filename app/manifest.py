"""The models catalogue, read by scanning the models folder: no shared file that every training run edits.

    models/<name>/<version>/model.json   one artifact's manifest entry (ManifestEntry), written by its training run
    models/<name>/promoted.json          {"version": ...}: the version the service serves (see app/core/promotion.py)

A model without promoted.json serves its newest version. A `manifest.json` at the top (the layout before this
one: every entry in one file) is still read, for folders trained with older code; a model.json wins over it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

ENTRY_FILE = "model.json"
PROMOTED_FILE = "promoted.json"
LEGACY_MANIFEST = "manifest.json"

log = logging.getLogger("deepserve.manifest")


class ManifestEntry(BaseModel):
    """One trained, versioned artifact."""

    name: str
    version: str
    task: str
    runtime: str = Field(description="Runtime in app/families that serves this artifact.")
    path: str = Field(description="Artifact folder, relative to the models folder.")
    files: dict[str, str] = Field(default_factory=dict, description="Role -> file inside the artifact folder.")
    metrics: dict[str, Any] = Field(default_factory=dict)
    command: str = ""
    created: str = ""
    data: str = Field("", description="Fingerprint of the training data (sha256 of its files), to compare runs.")


def version_key(version: str) -> tuple[int, str]:
    """Versions compare as integers when they are (10 after 9), after any that are not."""
    numeric = version.isascii() and version.isdigit()  # str.isdigit() is also true for "²", which int() refuses
    return (int(version), "") if numeric else (-1, version)


class Manifest(BaseModel):
    models: list[ManifestEntry] = Field(default_factory=list)
    promoted: dict[str, str] = Field(default_factory=dict, description="name -> promoted version")
    previous: dict[str, str] = Field(
        default_factory=dict, description="name -> the version promoted before (promoted.json's `previous`)"
    )
    problems: list[str] = Field(default_factory=list, description="files that could not be read, and why")
    broken: dict[str, list[str]] = Field(
        default_factory=dict, description="name -> the problems in that model's own folder (also in `problems`)"
    )

    def versions(self, name: str) -> list[ManifestEntry]:
        """Every artifact of `name`, oldest first."""
        return sorted((m for m in self.models if m.name == name), key=lambda m: version_key(m.version))

    def latest(self) -> dict[str, ManifestEntry]:
        """The newest version of each model name."""
        return {m.name: m for m in sorted(self.models, key=lambda m: version_key(m.version))}

    def wanted(self, name: str) -> str | None:
        """The version the service should serve of `name`: its promoted version (whether or not its model.json is
        readable), or its newest when none is promoted; None for a model with neither."""
        newest = self.versions(name)
        return self.promoted.get(name) or (newest[-1].version if newest else None)

    def served(self) -> dict[str, ManifestEntry]:
        """What the service should serve of each model: its promoted version, or its newest when none is promoted.
        A model whose promoted version has no readable model.json is left out, never replaced by another version
        in silence (the registry falls back explicitly, app/core/registry.py)."""
        chosen = self.latest()
        for name in {m.name for m in self.models}:
            entry = next((m for m in self.versions(name) if m.version == self.wanted(name)), None)
            if entry is None:
                del chosen[name]
            else:
                chosen[name] = entry
        return chosen


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_manifest(models_dir: Path) -> Manifest:
    """Every model.json under models_dir (and a legacy manifest.json), and every promoted.json. An unreadable file
    is skipped and named in `problems`, and in `broken` under its model when it is in a model's folder (the
    registry then fails or falls back that model, app/core/registry.py; a broken legacy manifest.json fails them
    all)."""
    models_dir = Path(models_dir)
    found: dict[tuple[str, str], ManifestEntry] = {}
    promoted: dict[str, str] = {}
    previous: dict[str, str] = {}
    problems: list[str] = []
    broken: dict[str, list[str]] = {}

    def problem(path: Path, exc: Exception) -> None:
        relative = path.relative_to(models_dir)
        problems.append(f"{relative}: {type(exc).__name__}: {exc}")
        if len(relative.parts) > 1:  # a model's own file, not the legacy manifest.json
            broken.setdefault(relative.parts[0], []).append(problems[-1])

    legacy = models_dir / LEGACY_MANIFEST
    if legacy.exists():
        try:
            for entry in Manifest.model_validate_json(legacy.read_bytes()).models:
                found[(entry.name, entry.version)] = entry
        except (OSError, ValueError) as exc:
            problems.append(f"{LEGACY_MANIFEST}: {type(exc).__name__}: {exc}")
    for path in sorted(models_dir.glob(f"*/*/{ENTRY_FILE}")):
        try:
            entry = ManifestEntry.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            problem(path, exc)
            continue
        found[(entry.name, entry.version)] = entry
    for path in sorted(models_dir.glob(f"*/{PROMOTED_FILE}")):
        try:
            pointer = _read_json(path)
            promoted[path.parent.name] = str(pointer["version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem(path, exc)
            continue
        if isinstance(pointer.get("previous"), (str, int)):
            previous[path.parent.name] = str(pointer["previous"])
    return Manifest(models=list(found.values()), promoted=promoted, previous=previous, problems=problems, broken=broken)


def _write_atomically(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the service may run as another user.
    os.replace(tmp, path)


def save_entry(models_dir: Path, entry: ManifestEntry) -> Path:
    """Write the entry as model.json inside its artifact folder (models_dir/entry.path)."""
    folder = Path(models_dir) / entry.path
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / ENTRY_FILE, entry.model_dump())
    return folder / ENTRY_FILE


def write_promoted(models_dir: Path, name: str, version: str, previous: str | None = None) -> Path:
    """Point models_dir/name/promoted.json at `version` (no checks: app/core/promotion.py decides)."""
    path = Path(models_dir) / name / PROMOTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_atomically(path, {"version": version, "promoted": stamp, "previous": previous})
    log.info("promoted %s v%s (was %s)", name, version, previous)
    return path
