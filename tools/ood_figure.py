"""docs/ood.png: how often each served classifier flags each data set as out of distribution, drawn from the flag
rates training/calibrate.py stored in the artifacts' model.json (`metrics.ood.flag_rates`; nothing is recomputed).

    python -m tools.ood_figure                      # the committed models -> docs/ood.png
    python -m tools.ood_figure --models DIR --out F

A bar is the share of a set's inputs whose `ood_score` is above 1.0, the line each model's thresholds put at about
1% of held-out in-distribution inputs; for images, the hatched part is the share refused before any score (422: no
digit found). Sets are coloured by what they should be: held-out in-distribution data (the thresholds' side, the
issue's target <= 2% flagged), real inputs unlike the training data that are in distribution by intent (should not
be flagged), and out-of-distribution sets (target >= 90% flagged). Models whose stored rates are the same (the text
checks of lstm and minilm) share one panel.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from app.manifest import read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = re.compile(r"held-out|restyled", re.IGNORECASE)  # besides the first set, the one thresholds come from
BY_INTENT = re.compile(r"in distribution by intent|not out of distribution by intent", re.IGNORECASE)
KINDS = {
    "held-out": ("held-out in-distribution data (target <= 2%)", "#2e8b57"),
    "by intent": ("real inputs, in distribution by intent (should not be flagged)", "#e69f00"),
    "ood": ("out-of-distribution sets (target >= 90%)", "#c0392b"),
}
IN_TARGET, OUT_TARGET = 0.02, 0.90


@dataclass(frozen=True)
class Bar:
    name: str
    kind: str  # a key of KINDS
    flagged: float  # share with ood_score > 1.0
    refused: float  # share refused before scoring (images: no digit found)
    inputs: int


def kind_of(name: str, position: int) -> str:
    """What a stored set is, from calibrate.py's names: its first set is the held-out half of the test split."""
    if position == 0 or HELD_OUT.search(name):
        return "held-out"
    return "by intent" if BY_INTENT.search(name) else "ood"


def bars_of(rates: dict[str, dict[str, Any]]) -> list[Bar]:
    bars = []
    for position, (name, rate) in enumerate(rates.items()):
        flagged = float(rate["flagged"])
        refused = float(rate.get("flagged_or_refused", flagged)) - flagged
        bars.append(Bar(name, kind_of(name, position), flagged, max(refused, 0.0), int(rate["inputs"])))
    return bars


def panels(models_dir: Path) -> dict[str, list[Bar]]:
    """Each served model's stored flag rates ("name version" -> bars), models with equal rates under one title."""
    grouped: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for name, entry in sorted(read_manifest(models_dir).served().items()):
        ood = entry.metrics.get("ood")
        rates = ood.get("flag_rates") if isinstance(ood, dict) else None
        if not rates:
            continue
        key = repr(sorted(rates.items()))
        titles, _ = grouped.setdefault(key, ([], rates))
        titles.append(f"{name} v{entry.version}")
    return {", ".join(titles): bars_of(rates) for titles, rates in grouped.values()}


def draw(drawn: dict[str, list[Bar]], path: Path) -> None:
    rows = sum(len(bars) for bars in drawn.values())
    fig, axes = plt.subplots(
        len(drawn), 1, figsize=(10, 1.2 + 0.34 * rows + 0.5 * len(drawn)), squeeze=False,
        gridspec_kw={"height_ratios": [len(bars) for bars in drawn.values()]},
    )  # fmt: skip
    for ax, (title, bars) in zip(axes[:, 0], drawn.items(), strict=True):
        y = range(len(bars))[::-1]
        colours = [KINDS[b.kind][1] for b in bars]
        ax.barh(y, [b.flagged for b in bars], color=colours)
        ax.barh(y, [b.refused for b in bars], left=[b.flagged for b in bars], color=colours, alpha=0.4, hatch="//")
        for row, bar in zip(y, bars, strict=True):  # the numbers right of the panel, in axes coordinates
            refused = f" + {bar.refused:.0%} refused" if bar.refused else ""
            ax.text(1.01, row, f"{bar.flagged:.1%}{refused} of {bar.inputs}", va="center", fontsize=7,
                    transform=ax.get_yaxis_transform())  # fmt: skip
        ax.set_yticks(list(y), [textwrap.fill(b.name, 48) for b in bars], fontsize=7)
        ax.axvline(IN_TARGET, color=KINDS["held-out"][1], linestyle=":", linewidth=1)
        ax.axvline(OUT_TARGET, color=KINDS["ood"][1], linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel(
        "share of the set flagged: ood_score > 1.0, the line the thresholds put at ~1% of held-out data "
        "(dotted: the targets, 2% and 90%)",
        fontsize=8,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for _, colour in KINDS.values()]
    fig.legend(handles, [label for label, _ in KINDS.values()], loc="upper center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.86, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, list[Bar]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ood.png")
    args = parser.parse_args(argv)
    drawn = panels(args.models)
    if not drawn:
        raise SystemExit(f"no served model under {args.models} has stored flag rates (python -m training.calibrate)")
    draw(drawn, args.out)
    print(f"{args.out}: {', '.join(drawn)}")
    return drawn


if __name__ == "__main__":
    main()
