"""A NAB-like series for the anomaly tests: three weeks of synthetic 30-minute taxi traffic (a daily cycle,
quieter weekends, two injected anomalies), written as NAB lays it out (data/<series>.csv and
labels/combined_windows.json), and the arguments of a tiny training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SERIES = "realKnownCause/nyc_taxi.csv"

DAYS = 21
STEPS_PER_DAY = 48
ANOMALIES = [(10 * STEPS_PER_DAY + 10, 10 * STEPS_PER_DAY + 40), (17 * STEPS_PER_DAY, 17 * STEPS_PER_DAY + 30)]

# training.train_anomaly arguments for a run of a few seconds: one epoch, one seed, no config comparison.
TINY = ["--window", "48", "--epochs", "1", "--eval-seeds", "1", "--no-compare", "--train-stride", "4", "--stride", "3"]


def synthetic_series(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = DAYS * STEPS_PER_DAY
    timestamps = np.datetime64("2014-07-01T00:00:00") + np.arange(n) * np.timedelta64(30, "m")
    day = np.arange(n) / STEPS_PER_DAY
    weekend = ((day // 1) % 7 >= 5).astype(float)
    values = 15000 + 7000 * np.sin(2 * np.pi * (day - 0.3)) * (1 - 0.4 * weekend) + rng.normal(0, 400, n)
    a, b = ANOMALIES[0]
    values[a:b] = 2000  # a storm: traffic collapses
    a, b = ANOMALIES[1]
    values[a:b] += 15000  # an event: a surge at night
    return timestamps, values


def write_csv(path: Path, timestamps: np.ndarray, values: np.ndarray, order: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.arange(len(values)) if order is None else order
    rows = [f"{str(timestamps[i]).replace('T', ' ')},{values[i]:.0f}" for i in order]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def label_windows(timestamps: np.ndarray, spans: list[tuple[int, int]]) -> list[list[str]]:
    fmt = lambda t: str(t).replace("T", " ") + ".000000"  # noqa: E731 - NAB's own timestamp format
    return [[fmt(timestamps[a]), fmt(timestamps[b])] for a, b in spans]


def write_nab_root(root: Path, spans: list[tuple[int, int]] = ANOMALIES) -> tuple[np.ndarray, np.ndarray]:
    timestamps, values = synthetic_series()
    write_csv(root / "data" / SERIES, timestamps, values)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    windows = {SERIES: label_windows(timestamps, spans), "other/x.csv": []}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return timestamps, values
