"""Versioned artifact folders, metrics files and model.json entries: the one way every training script saves."""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from app.families.family import Task
from app.manifest import ManifestEntry, read_manifest, save_entry, write_promoted

MODELS_DIR = Path("models")  # every script's default --out: the folder the service reads


def next_version(models_dir: Path, name: str) -> str:
    """One more than the highest integer version already in the manifest or on disk."""
    taken = {int(m.version) for m in read_manifest(models_dir).models if m.name == name and m.version.isdigit()}
    folder = Path(models_dir) / name
    if folder.exists():
        taken |= {int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()}
    return str(max(taken, default=0) + 1)


def add_output_args(parser: argparse.ArgumentParser, version_help: str = "default: next integer") -> None:
    """--out (the models folder) and --version, the same in every training script."""
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="models folder (one <name>/<version>/ per run)")
    parser.add_argument("--version", help=f"artifact version ({version_help})")


def new_artifact_dir(models_dir: Path, name: str, version: str | None) -> tuple[str, Path]:
    """The version (given, or the next integer) and its freshly created folder models_dir/name/version."""
    version = version or next_version(models_dir, name)
    folder = Path(models_dir) / name / version
    folder.mkdir(parents=True, exist_ok=True)
    return version, folder


def library_versions(*packages: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def keras_run_record(history: dict[str, list[float]]) -> dict[str, Any]:
    """What every Keras training run records beside its own metrics: per-epoch history and library versions."""
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "libraries": library_versions("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"),
    }


def run_record(model, history: dict[str, list[float]], seconds: float, **examples: int) -> dict[str, Any]:
    """What every Keras training run records after its scores: epochs run, training seconds, the model's size and
    name, examples per split (train=n, test=m -> train_examples, test_examples), then keras_run_record."""
    return {
        "epochs": len(history["loss"]),
        "seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
        "architecture": model.name,
        **{f"{split}_examples": int(n) for split, n in examples.items()},
        **keras_run_record(history),
    }


def training_command(module: str, argv: list[str] | None) -> str:
    """The exact command that ran a training script, as a user would retype it."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def data_fingerprint(data: str | Path | None) -> str:
    """sha256 over the training data's files (names and bytes, in sorted order), so two runs can be compared; for
    data fetched by the script itself (no local path), "download"."""
    if data is None or str(data) == "download":
        return "download"
    if not Path(data).exists():
        return f"unreadable:{data}"
    root = Path(data)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root) if path != root else path.name).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def register(models_dir: Path, entry: ManifestEntry) -> str:
    """Write the run's model.json. The first artifact of a model is promoted (nothing to compare it with); any
    later one is a candidate the service does not serve until `deepserve promote`. Returns what happened."""
    manifest = read_manifest(models_dir)
    save_entry(models_dir, entry)
    promoted = manifest.promoted.get(entry.name)
    if promoted is None:  # nothing promoted yet: keep serving what was served (older folders), else this one
        previous = manifest.served().get(entry.name)
        promoted = previous.version if previous else entry.version
        write_promoted(models_dir, entry.name, promoted)
    if promoted == entry.version:
        return "promoted: the service serves it"
    return (
        f"a candidate: v{promoted} stays served; compare and serve it with "
        f"`deepserve promote {entry.name} {entry.version} --models {models_dir}`"
    )


def write_json(path: Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=float) + "\n")


def save_run(
    models_dir: Path,
    artifact_dir: Path,
    *,
    name: str,
    version: str,
    task: Task[Any],
    runtime: str,
    files: dict[str, str],
    metrics: dict[str, Any],
    command: str,
    summary: str,
    history: dict[str, list[float]] | list[dict[str, list[float]]] | None = None,
    labels: list[str] | None = None,
    extra_plots: dict[str, Callable[[Path], None]] | None = None,
    data: str | Path | None = None,
) -> ManifestEntry:
    """The end of every training run: the standard plots, metrics.json and model.json (its manifest entry, with
    the fingerprint of `data`, the training data's path, and the name of `task`, one of the tasks declared in
    app/families/tasks.py), then one line saying whether it is served.

    Plots, each listed in the entry's files: training_curves.png from `history` (a list for an ensemble),
    confusion_matrix.png from metrics["confusion_matrix"] when `labels` name its classes, then `extra_plots`
    (name -> draw(path), written to name.png).
    """
    from training.common import plots

    files = dict(files)
    if history is not None:
        plots.training_curves(history, artifact_dir / "training_curves.png")
        files["training_curves"] = "training_curves.png"
    if labels is not None:
        matrix = np.asarray(metrics["confusion_matrix"])
        plots.confusion_matrix_plot(matrix, labels, artifact_dir / "confusion_matrix.png")
        files["confusion_matrix"] = "confusion_matrix.png"
    for plot, draw in (extra_plots or {}).items():
        draw(artifact_dir / f"{plot}.png")
        files[plot] = f"{plot}.png"
    write_json(artifact_dir / "metrics.json", metrics)
    entry = ManifestEntry(
        name=name,
        version=version,
        task=task.name,
        runtime=runtime,
        path=str(Path(artifact_dir).resolve().relative_to(Path(models_dir).resolve())),
        files={**files, "metrics": "metrics.json"},
        metrics={k: v for k, v in metrics.items() if not isinstance(v, (list, dict))},
        command=command,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        data=data_fingerprint(data),
    )
    status = register(models_dir, entry)
    print(f"saved {entry.name} v{entry.version} to {artifact_dir}: {summary}; {status}")
    return entry
