"""A seeded, labelled corpus of synthetic series of the kinds users send, with anomalies in NAB's window format.

The anomaly detector's defaults are chosen on this corpus (bench/anomaly_defaults.py), never on NAB's labels.
Each series is one base kind at one sampling step, at a random scale and offset:

* base kinds: daily (and weekly) seasonality, seasonality on a trend, a random walk, a noisy flat metric (some
  with heavy-tailed noise), counts (Poisson integers on a daily cycle), a step-like CPU metric (levels that
  switch as a normal matter), periodic bursts (a cron job);
* sampling every minute, five minutes or hour; lengths 1,000 to 8,000 points; some with gaps (missing points:
  the timestamps jump, the values go on);
* anomalies: spike, dip, level shift, variance change, flat line (a stuck sensor), slow drift, outage (drops to
  zero), a missing cycle; 0 to 3 per series; a quarter of the series have none (false alarms count).

Windows follow NAB: each is centred on its anomaly's first point, 10% of the series' length divided by its
number of anomalies wide, as inclusive row indices. `--write DIR` lays the corpus out as NAB does
(data/synthetic/*.csv, labels/combined_windows.json).

    python -m bench.anomaly_synthetic --seed 0 --series 100          # what the corpus holds
    python -m bench.anomaly_synthetic --seed 0 --write /tmp/synthetic
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEPS = {"1min": 60, "5min": 300, "hourly": 3600}
KINDS = ("seasonal", "trend_seasonal", "random_walk", "noisy_flat", "counts", "cpu_steps", "bursts")
ANOMALIES = ("spike", "dip", "level_shift", "variance", "flat_line", "drift", "outage", "missing_cycle")
EPOCH = np.datetime64("2024-01-01T00:00:00", "s")


@dataclass(frozen=True)
class Series:
    name: str  # "synthetic/<index>_<kind>_<step>.csv"
    timestamps: np.ndarray  # datetime64[s], strictly increasing (with gaps)
    values: np.ndarray  # float64
    windows: list[tuple[int, int]]  # inclusive rows, NAB's windows
    anomalies: tuple[str, ...]  # the injected kinds, in order of position
    kind: str  # the base kind
    step: str  # the sampling step's name


def _base(kind: str, n: int, step: int, rng: np.random.Generator) -> tuple[np.ndarray, float, bool]:
    """(values, the noise scale, integer-valued) of one anomaly-free series."""
    day = np.arange(n) * step / 86400
    phase = rng.uniform(0, 2 * np.pi)
    daily = np.sin(2 * np.pi * day + phase) + rng.uniform(0, 0.5) * np.sin(4 * np.pi * day + 2 * phase)
    weekly = 1 - rng.uniform(0, 0.5) * (((day // 1) % 7) >= 5)  # quieter weekends
    noise = rng.uniform(0.03, 0.3)
    heavy = rng.random() < 0.3
    eps = rng.standard_t(3, n) / np.sqrt(3) if heavy else rng.normal(0, 1, n)
    if kind == "seasonal":
        return daily * weekly + noise * eps, noise, False
    if kind == "trend_seasonal":
        slope = rng.uniform(-1.5, 1.5) / max(day[-1], 1.0)
        return daily * weekly + slope * day + noise * eps, noise, False
    if kind == "random_walk":
        walk = np.cumsum(rng.normal(0, 1, n))
        return walk / (np.std(walk) + 1e-9) + noise * eps, noise, False
    if kind == "noisy_flat":
        return eps, 1.0, False
    if kind == "counts":
        rate = rng.uniform(0.5, 30) * (1.2 + daily) / 1.2
        return rng.poisson(np.maximum(rate, 0.05)).astype(np.float64), float(np.sqrt(rate.mean())), True
    if kind == "cpu_steps":
        levels, switch = rng.uniform(5, 60, 6), rng.uniform(1 / 400, 1 / 80)
        state = np.cumsum(rng.random(n) < switch) % len(levels)
        return levels[state] + rng.uniform(0.5, 3) * eps, 2.0, False
    period = int(rng.integers(24, 200))  # bursts: a job every `period` points, a few points long
    burst = (np.arange(n) % period) < max(2, period // 12)
    return 1.0 * burst + noise * eps, noise, False


def _inject(values: np.ndarray, kind: str, at: int, rng: np.random.Generator, noise: float, step: int) -> None:
    """Put one anomaly of `kind` into `values` from row `at`, sized against the series' own range and noise."""
    n = len(values)
    lo, hi = np.percentile(values[:at], [1, 99]) if at > 10 else (values.min(), values.max())
    spread = max(hi - lo, 6 * noise, 1e-9)
    size = rng.uniform(0.3, 1.0) * spread
    length = int(rng.integers(max(3, n // 100), max(4, n // 25)))
    end = min(n, at + length)
    if kind == "spike":
        values[at] = hi + size
    elif kind == "dip":
        values[at] = lo - size
    elif kind == "level_shift":
        values[at:] += size * rng.choice([-1, 1])
    elif kind == "variance":
        extra = values[at:end] - np.median(values[at:end])
        values[at:end] += rng.uniform(2, 5) * (extra + rng.normal(0, max(noise, 0.05 * spread), end - at))
    elif kind == "flat_line":
        values[at:end] = values[at]
    elif kind == "drift":
        ramp = np.linspace(0, rng.uniform(0.6, 1.5) * spread * rng.choice([-1, 1]), n - at)
        values[at:] += ramp
    elif kind == "outage":
        values[at:end] = 0.0 if lo > 0.25 * spread else lo - size
    else:  # missing_cycle: a day (or a burst period's worth) with no cycle, the level held at the median
        day = max(length, int(86400 / step))
        values[at : at + day] = np.median(values[:at]) + noise * rng.normal(0, 1, len(values[at : at + day]))


def make_series(index: int, rng: np.random.Generator) -> Series:
    kind = KINDS[index % len(KINDS)]
    step_name = str(rng.choice(list(STEPS)))
    step = STEPS[step_name]
    n = int(np.exp(rng.uniform(np.log(1000), np.log(8000))))
    values, noise, integer = _base(kind, n, step, rng)
    count = 0 if rng.random() < 0.25 else int(rng.integers(1, 4))
    # Anomalies after NAB's probation (15%), at least one window apart.
    starts: list[int] = []
    while len(starts) < count:
        at = int(rng.integers(int(0.2 * n), int(0.95 * n)))
        if all(abs(at - s) > 0.1 * n for s in starts):
            starts.append(at)
    starts.sort()
    kinds = tuple(str(rng.choice(ANOMALIES)) for _ in starts)
    for at, anomaly in zip(starts, kinds, strict=True):
        _inject(values, anomaly, at, rng, noise, step)
    if integer:
        values = np.maximum(np.round(values), 0.0)
    else:
        scale = 10 ** rng.uniform(-3, 5)
        values = values * scale + rng.choice([0.0, 1.0, -1.0]) * rng.uniform(0, 100) * scale
    times = EPOCH + np.arange(n) * np.timedelta64(step, "s")
    keep = np.ones(n, dtype=bool)
    if rng.random() < 0.25:  # gaps: missing points (never an anomaly's first point)
        for _ in range(int(rng.integers(1, 4))):
            a = int(rng.integers(0, n))
            keep[a : a + int(rng.integers(2, max(3, n // 50)))] = False
        keep[starts] = True
    rows = np.cumsum(keep) - 1  # old index -> new row
    values, times = values[keep], times[keep]
    width = int(0.1 * len(values) / count) if count else 0
    windows = []
    for a in starts:
        left = int(rows[a]) - width // 2
        windows.append((max(0, left), min(len(values) - 1, left + width - 1)))
    name = f"synthetic/{index:03d}_{kind}_{step_name}.csv"
    return Series(name, times, values, windows, kinds, kind, step_name)


def corpus(seed: int = 0, series: int = 100) -> list[Series]:
    """`series` series, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [make_series(i, rng) for i in range(series)]


DENSE_ANOMALIES = ("spike", "dip", "level_shift", "variance", "outage", "flat_line")


def _inject_short(values: np.ndarray, kind: str, at: int, length: int, rng: np.random.Generator, noise: float) -> None:
    """One anomaly of `kind` from row `at` lasting at most `length` rows (a level shift lasts), sized as `_inject`'s."""
    past = values[:at][np.isfinite(values[:at])]
    lo, hi = np.percentile(past, [1, 99]) if past.size > 10 else (np.nanmin(values), np.nanmax(values))
    spread = max(hi - lo, 6 * noise, 1e-9)
    size = rng.uniform(0.3, 1.0) * spread
    end = min(len(values), at + length)
    if kind == "spike":
        values[at] = hi + size
    elif kind == "dip":
        values[at] = lo - size
    elif kind == "level_shift":
        values[at:] += size * rng.choice([-1, 1])
    elif kind == "variance":
        values[at:end] += rng.uniform(2, 5) * max(noise, 0.05 * spread) * rng.normal(0, 1, end - at)
    elif kind == "outage":
        values[at:end] = 0.0 if lo > 0.25 * spread else lo - size
    else:  # flat_line
        values[at:end] = values[at]


def separate_windows(starts: list[int], n: int) -> list[tuple[int, int]]:
    """NAB-style windows (inclusive rows) centred on each start of a series of n points, as wide as NAB's (10% of
    the series over the count) but never reaching a neighbour's."""
    nearest = np.minimum(np.diff([-(10**9), *starts]), np.diff([*starts, 10**9]))
    windows = []
    for a, room in zip(starts, nearest, strict=True):
        width = int(max(4, min(0.1 * n / len(starts), room - 2)))
        windows.append((max(0, a - width // 2), min(n - 1, a - width // 2 + width - 1)))
    return windows


def make_dense_series(index: int, rng: np.random.Generator) -> Series:
    """A short series (400 to 3,000 points) with 2 to 6 events, most of them closer than the detector's refractory
    period (100 points) to the one before, the first often inside the old 150-point warm-up, and in a fifth of the
    series runs of missing values (NaN): the class of real monitoring series the default detector served worst."""
    kind = KINDS[index % len(KINDS)]
    step_name = str(rng.choice(list(STEPS)))
    step = STEPS[step_name]
    n = int(np.exp(rng.uniform(np.log(400), np.log(3000))))
    values, noise, integer = _base(kind, n, step, rng)
    count = int(rng.integers(2, 7))
    at = int(rng.integers(40, 120)) if rng.random() < 0.5 else int(rng.integers(120, max(121, n // 4)))
    starts = []
    while len(starts) < count and at < n - 20:
        starts.append(at)
        at += int(rng.integers(25, 95)) if rng.random() < 0.7 else int(rng.integers(100, 400))
    gaps = np.diff([*starts, n])
    kinds = tuple(str(rng.choice(DENSE_ANOMALIES)) for _ in starts)
    for a, gap, anomaly in zip(starts, gaps, kinds, strict=True):
        _inject_short(values, anomaly, a, int(rng.integers(3, max(4, min(20, gap // 2)))), rng, noise)
    if integer:
        values = np.maximum(np.round(values), 0.0)
    else:
        scale = 10 ** rng.uniform(-3, 5)
        values = values * scale + rng.choice([0.0, 1.0, -1.0]) * rng.uniform(0, 100) * scale
    if rng.random() < 0.2:  # missing values (never an anomaly's first point)
        for _ in range(int(rng.integers(1, 4))):
            a = int(rng.integers(0, n))
            values[a : a + int(rng.integers(1, 6))] = np.nan
        values[starts] = np.where(np.isnan(values[starts]), np.nanmedian(values), values[starts])
    windows = separate_windows(starts, n)
    times = EPOCH + np.arange(n) * np.timedelta64(step, "s")
    name = f"dense/{index:03d}_{kind}_{step_name}.csv"
    return Series(name, times, values, windows, kinds, kind, step_name)


def dense_corpus(seed: int = 0, series: int = 100) -> list[Series]:
    """`series` dense series (make_dense_series), the same for the same seed."""
    rng = np.random.default_rng(10_000 + seed)
    return [make_dense_series(i, rng) for i in range(series)]


def write_nab(root: Path, items: list[Series]) -> None:
    """The corpus as NAB lays it out: data/<name> CSVs and labels/combined_windows.json."""
    labels = {}
    for s in items:
        path = root / "data" / s.name
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{str(t).replace('T', ' ')},{v!r}" for t, v in zip(s.timestamps, s.values, strict=True)]
        path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
        stamps = [str(t).replace("T", " ") + ".000000" for t in s.timestamps]  # NAB's label format
        labels[s.name] = [[stamps[a], stamps[b]] for a, b in s.windows]
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--write", type=Path, help="write the corpus in NAB's layout under this folder")
    args = parser.parse_args()
    items = corpus(args.seed, args.series)
    points = sum(len(s.values) for s in items)
    print(f"seed {args.seed}: {len(items)} series, {points:,} points, {sum(len(s.windows) for s in items)} anomalies")
    print("base kinds:", dict(Counter(s.kind for s in items)))
    print("steps:", dict(Counter(s.step for s in items)))
    print("anomalies:", dict(Counter(a for s in items for a in s.anomalies)))
    print("series without anomalies:", sum(not s.windows for s in items))
    if args.write:
        write_nab(args.write, items)
        print(f"written under {args.write}")


if __name__ == "__main__":
    main()
