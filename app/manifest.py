"""The models manifest: one JSON file in the models folder that training writes and the service reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

MANIFEST_FILE = "manifest.json"


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


class Manifest(BaseModel):
    models: list[ManifestEntry] = Field(default_factory=list)

    def latest(self) -> dict[str, ManifestEntry]:
        """The newest version of each model name (versions compare as integers when they are)."""

        def key(entry: ManifestEntry) -> tuple[int, str]:
            return (int(entry.version), "") if entry.version.isdigit() else (-1, entry.version)

        best: dict[str, ManifestEntry] = {}
        for entry in self.models:
            if entry.name not in best or key(entry) > key(best[entry.name]):
                best[entry.name] = entry
        return best


def read_manifest(models_dir: Path) -> Manifest:
    path = Path(models_dir) / MANIFEST_FILE
    if not path.exists():
        return Manifest()
    return Manifest.model_validate_json(path.read_text())


def add_to_manifest(models_dir: Path, entry: ManifestEntry) -> Path:
    """Add or replace (same name and version) an entry; written atomically so a reader never sees half a file."""
    models_dir = Path(models_dir)
    manifest = read_manifest(models_dir)
    kept = [m for m in manifest.models if (m.name, m.version) != (entry.name, entry.version)]
    manifest = Manifest(models=[*kept, entry])
    path = models_dir / MANIFEST_FILE
    fd, tmp = tempfile.mkstemp(dir=models_dir, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest.model_dump(), f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the service may run as another user.
    os.replace(tmp, path)
    return path
