"""Where the repository, the committed models and the shared real data sets are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
COMMITTED_MODELS = ROOT / "models"
