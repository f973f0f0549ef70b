"""Models folders with several versions of the committed digit model (copies of v1 with other metrics, or with a
corrupt file), for the promotion, reload and pinning tests."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from app.manifest import read_manifest, save_entry, write_promoted
from tests.support.paths import COMMITTED_MODELS

GARBAGE = b"this is not an onnx file"


def digit_folder(out: Path) -> Path:
    """`out` holding a copy of the committed digit model's v1 alone, promoted; returns out."""
    shutil.copytree(COMMITTED_MODELS / "digit" / "1", out / "digit" / "1")
    write_promoted(out, "digit", "1")
    return out


def add_version(models: Path, version: str, accuracy: float | None = None, corrupt: bool = False) -> Path:
    """A copy of digit v1 as `version` (its test_accuracy set to `accuracy` when given; its ONNX file garbage when
    `corrupt`); returns its folder."""
    first = next(e for e in read_manifest(models).versions("digit") if e.version == "1")
    folder = models / "digit" / version
    shutil.copytree(models / first.path, folder)
    metrics = first.metrics if accuracy is None else {**first.metrics, "test_accuracy": accuracy}
    save_entry(models, first.model_copy(update={"version": version, "path": f"digit/{version}", "metrics": metrics}))
    if corrupt:
        (folder / first.files["onnx"]).write_bytes(GARBAGE)
    return folder


@functools.cache
def digit_with_a_worse_candidate() -> Path:
    """A models folder (removed at exit): digit v1 promoted and a v2 whose test_accuracy is 0.5."""
    out = Path(tempfile.mkdtemp(prefix="worse-candidate-"))
    atexit.register(shutil.rmtree, out, True)
    add_version(digit_folder(out), "2", accuracy=0.5)
    return out
