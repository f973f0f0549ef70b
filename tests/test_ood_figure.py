"""docs/ood.png's command (tools/ood_figure.py) on the committed models: it reads every flag rate training/calibrate.py
stored in each served classifier's model.json, and sorts the sets into held-out, by-intent and out-of-distribution
ones. What it draws is not checked pixel by pixel."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.manifest import read_manifest
from tests.support.paths import COMMITTED_MODELS, ROOT
from tools import ood_figure


def test_the_figure_draws_every_stored_set_of_every_served_classifier(tmp_path: Path) -> None:
    out = tmp_path / "ood.png"
    drawn = ood_figure.main(["--models", str(COMMITTED_MODELS), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    stored = {
        f"{name} v{entry.version}": entry.metrics["ood"]["flag_rates"]
        for name, entry in read_manifest(COMMITTED_MODELS).served().items()
        if "flag_rates" in entry.metrics.get("ood", {})
    }
    assert {"digit", "fashion", "lstm", "minilm"} <= {model.split()[0] for model in stored}
    for model, rates in stored.items():
        [bars] = [bars for title, bars in drawn.items() if model in title.split(", ")]
        wanted = [(name, rate["flagged"], rate["inputs"]) for name, rate in rates.items()]
        assert [(b.name, b.flagged, b.inputs) for b in bars] == wanted
    assert sum(len(title.split(", ")) for title in drawn) == len(stored)  # each model in one panel
    [lstm] = [model for model in stored if model.startswith("lstm ")]
    [minilm] = [model for model in stored if model.startswith("minilm ")]
    if stored[lstm] == stored[minilm]:  # the same text checks, the same rates: one panel
        assert f"{lstm}, {minilm}" in drawn


def test_sets_are_sorted_by_what_they_should_be() -> None:
    drawn = ood_figure.panels(COMMITTED_MODELS)
    digit = {b.name: b for b in next(bars for title, bars in drawn.items() if title.startswith("digit "))}
    assert digit["MNIST test"].kind == digit["MNIST test, restyled"].kind == "held-out"
    assert digit["noise"].kind == digit["letters, fonts never trained on: DejaVu"].kind == "ood"
    assert digit["printed digits, fonts never trained on (in distribution by intent)"].kind == "by intent"
    assert [b.kind for name, b in digit.items() if name.startswith("sklearn 8x8")] == ["by intent"]
    blank = read_manifest(COMMITTED_MODELS).served()["digit"].metrics["ood"]["flag_rates"]["blank scans"]
    assert blank["refused"] > 0  # refused as blank before any score: drawn apart from the flagged share
    assert digit["blank scans"].refused == pytest.approx(blank["flagged_or_refused"] - blank["flagged"])
    for bars in drawn.values():
        assert bars[0].kind == "held-out" and any(b.kind == "ood" for b in bars)
    text = {b.name: b.kind for b in next(bars for title, bars in drawn.items() if "lstm v2" in title)}
    assert text["IMDb test (held-out half)"] == "held-out" and text["random letters"] == "ood"


def test_the_figure_is_in_the_docs_and_a_models_dir_without_rates_is_an_error(tmp_path: Path) -> None:
    assert (ROOT / "docs" / "ood.png").is_file()
    assert "](ood.png)" in (ROOT / "docs" / "models.md").read_text()
    with pytest.raises(SystemExit, match="no served model"):
        ood_figure.main(["--models", str(tmp_path), "--out", str(tmp_path / "ood.png")])
