"""Where the repository, the committed models and the shared real data sets are (and a committed model stripped of
its explanation export)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
COMMITTED_MODELS = ROOT / "models"


@functools.cache
def without_explanations(name: str) -> Path:
    """A models folder with a copy of the committed `name` whose model.json lists no explanation export."""
    out = Path(tempfile.mkdtemp(prefix="unexplained-"))
    atexit.register(shutil.rmtree, out, True)
    shutil.copytree(COMMITTED_MODELS / name, out / name)
    for manifest in (out / name).glob("*/model.json"):
        entry = json.loads(manifest.read_text())
        entry["files"] = {role: f for role, f in entry["files"].items() if not role.startswith("explain_")}
        manifest.write_text(json.dumps(entry, indent=2))
    return out
