"""Committed detector versions side by side on the label-free corpora (no NAB label file is read).

    nice -n 10 python -m bench.anomaly_versions --real ../shared/data/nab/data 2 5

Runs each models/nearest_context/<version> on bench/anomaly_refractory.py's sets: NAB's values with injected events
(search and check halves), the dense synthetic corpora (short series, close events, the first often inside the
warm-up) and the plain one, and prints one row a version, including the events that start in a series' first 150
points (v2's warm-up) and the alarm rate on the real series read without labels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.families.anomaly.detector import DetectorConfig
from bench.anomaly_defaults import unlabelled
from bench.anomaly_refractory import HEADER, cells, corpora

MODELS = Path(__file__).resolve().parents[1] / "models" / "nearest_context"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="a folder of real series (*/*.csv), no labels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("versions", nargs="+", help="versions under models/nearest_context, e.g. 2 5")
    args = parser.parse_args()
    sets, real = corpora(args.real, args.seed), unlabelled(args.real)
    print("version | " + " | ".join(sets) + " | real series, alarms per 1,000 points")
    print(HEADER + "\n")
    for version in args.versions:
        config = DetectorConfig(**json.loads((MODELS / version / "detector.json").read_text()))
        row, _ = cells(config, sets, real)
        print(f"| {version} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
