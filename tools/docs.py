"""The numbers in the README and docs/, regenerated from their sources so that they cannot go stale:

- README.md `models`: each model's route and measurements, from its promoted artifact's model.json and files;
- docs/errors.md `errors`: the error table, from app/errors.py's ERROR_TABLE;
- docs/development.md `tests`: how many tests there are (all, quick, slow, real-data: pytest's own collection)
  and what the test setup and the artifacts weigh on disk; with `--run`, also the full suite's wall time here.

    python -m tools.docs           # rewrite the generated blocks in place
    python -m tools.docs --check   # exit 1 naming every block that differs (tests/test_docs.py runs it)

A block sits between `<!-- generated: NAME (python -m tools.docs) -->` and `<!-- end: NAME -->`; the text around it
is written by people.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from app.errors import markdown_table
from app.families import FAMILIES
from app.families.tasks import TASKS
from app.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

# What each family's table row shows from its model.json metrics: (label, metric key, "pct" | "num").
MEASURES: dict[str, list[tuple[str, str, str]]] = {
    "digit": [("MNIST test", "test_accuracy", "pct")],
    "fashion": [
        ("Fashion-MNIST test", "test_accuracy", "pct"),
        ("real photos (held out)", "photo_held_out_accuracy", "pct"),
    ],
    "image": [("validation", "validation_accuracy", "pct")],
    "minilm": [("SST-2 validation", "sst2_validation_accuracy", "pct"), ("IMDb test", "imdb_test_accuracy", "pct")],
    "distilbert": [("SST-2 validation", "sst2_validation_accuracy", "pct"), ("IMDb test", "imdb_test_accuracy", "pct")],
    "lstm": [("IMDb test", "imdb_test_accuracy", "pct"), ("SST-2 validation", "sst2_validation_accuracy", "pct")],
    "nearest_context": [("NAB standard score", "nab_standard", "num"), ("low-FP", "nab_reward_low_FP_rate", "num")],
    "anomaly": [("NAB nyc_taxi windows found", "windows_detected", "num")],
}


def size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    if total >= 2**30:
        return f"{total / 2**30:.1f} GB"
    return f"{total / 2**20:.1f} MB" if total >= 2**20 else f"{total / 2**10:.0f} KB"


def models_table() -> str:
    served = read_manifest(MODELS).served()
    rows = ["| model | route | served artifact | measured |", "|---|---|---|---|"]
    # task -> what a request naming no model gets: its declared default, else its first family served
    defaults = {task.name: task.default for task in TASKS.values() if task.default}
    for name, family in FAMILIES.items():
        if name in served:
            defaults.setdefault(family.task, name)
    for name, family in FAMILIES.items():
        route = f"`{family.endpoint.split(',')[0]}`"
        label = name
        if defaults.get(family.task) == name and sum(f.task == family.task for f in FAMILIES.values()) > 1:
            label = f"{name} (default)"
        entry = served.get(name)
        if entry is None:
            rows.append(f"| {label} | {route} | not installed: `{family.install}` | |")
            continue
        metrics = entry.metrics
        shown = []
        for what, key, kind in MEASURES.get(name, []):
            if key in metrics:
                value = metrics[key]
                text = f"{100 * value:.2f}%" if kind == "pct" else f"{value:g}"
                if key == "windows_detected" and "windows_total" in metrics:
                    text += f" of {metrics['windows_total']}"
                shown.append(f"{what} {text}")
        folder = MODELS / entry.path
        parameters = f", {metrics['parameters']:,} parameters" if "parameters" in metrics else ""
        rows.append(f"| {label} | {route} | `models/{entry.path}` ({size(folder)}{parameters}) | {'; '.join(shown)} |")
    return "\n".join(rows)


def collected(*marks: str) -> int:
    """How many tests pytest collects (with `-m` expressions)."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *marks]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", out)
    if found is None:
        raise RuntimeError(f"pytest --collect-only said: {out[-500:]}")
    return int(found.group(1))


def tests_block(previous: str, run: bool) -> str:
    """The test counts and sizes; the suite's time is measured with --run, else kept from the block as it was."""
    counts = {
        "all": collected(),
        "quick": collected("-m", "not slow and not real_data"),
        "slow": collected("-m", "slow"),
        "real_data": collected("-m", "real_data"),
    }
    venv = ROOT / ".venv"
    timing = re.search(r"\| full suite, wall time \|.*\|", previous)
    unmeasured = "| full suite, wall time | not measured yet (`python -m tools.docs --run`) |"
    timing_row = timing.group(0) if timing else unmeasured
    if run:
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-x"], cwd=ROOT, check=True)
        minutes = (time.monotonic() - start) / 60
        timing_row = f"| full suite, wall time | {minutes:.1f} min on 2 CPU cores ({date.today().isoformat()}) |"
    rows = [
        "| | |",
        "|---|---|",
        f"| tests (`pytest -q`) | {counts['all']} |",
        f'| quick set (`-m "not slow and not real_data"`) | {counts["quick"]} |',
        f"| marked `slow` | {counts['slow']} |",
        f"| marked `real_data` (skip without the data) | {counts['real_data']} |",
        timing_row,
        f"| test setup on disk (`.venv`) | {size(venv) if venv.is_dir() else 'not installed here'} |",
        f"| committed artifacts (`models/`) | {size(MODELS)} |",
    ]
    return "\n".join(rows)


BLOCKS: dict[str, tuple[Path, Callable[[str, bool], str]]] = {
    "models": (ROOT / "README.md", lambda previous, run: models_table()),
    "errors": (ROOT / "docs" / "errors.md", lambda previous, run: markdown_table()),
    "tests": (ROOT / "docs" / "development.md", tests_block),
}


def block_pattern(name: str) -> re.Pattern[str]:
    start, end = rf"<!-- generated: {name} \(python -m tools\.docs\) -->\n", rf"<!-- end: {name} -->"
    return re.compile(f"({start})(.*?)({end})", re.DOTALL)


def regenerate(names: list[str], check: bool, run: bool) -> list[str]:
    """Rewrite (or with check, compare) the named blocks; the names of those that differed."""
    stale = []
    for name in names:
        path, make = BLOCKS[name]
        text = path.read_text()
        found = block_pattern(name).search(text)
        if found is None:
            raise SystemExit(f"{path.relative_to(ROOT)} has no generated block '{name}'")
        previous = found.group(2)
        current = make(previous, run)
        if name == "tests" and check:  # sizes and time depend on the machine: only the counts are held
            machine = re.compile(r"\| (test setup|committed|full suite).*\n?")
            current, previous = (machine.sub("", t) for t in (current, previous))
        if current.strip() != previous.strip():
            stale.append(name)
            if not check:
                path.write_text(text[: found.start(2)] + current.strip() + "\n" + text[found.end(2) :])
    return stale


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=list(BLOCKS), help=f"blocks to regenerate (default: {list(BLOCKS)})")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    p.add_argument("--run", action="store_true", help="also run the whole test suite and record its wall time")
    args = p.parse_args(argv)
    stale = regenerate(args.names, args.check, args.run)
    if args.check and stale:
        raise SystemExit(f"stale generated blocks: {', '.join(stale)} (regenerate: python -m tools.docs)")
    print(json.dumps({"changed" if not args.check else "stale": stale}))


if __name__ == "__main__":
    main()
