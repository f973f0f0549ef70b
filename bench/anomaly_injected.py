"""A seeded, labelled tuning corpus built on REAL backgrounds: real series' values with synthetic events injected.

    python -m bench.anomaly_injected --real ../shared/data/nab/data --seed 0      # what the corpus holds

The synthetic corpora (bench/anomaly_synthetic.py) are cleaner than real monitoring data: a rule tuned there
(`quiet`) re-alarmed inside long disturbed real stretches. Here the background is a real series (every */*.csv
under `--real`, e.g. NAB's data/ folder, only its `value` column: no label file is read) and the events are
injected into it, so their positions are known and the real series' own oddities stay in. Those own anomalies
are unknown: an alarm on one counts as a false alarm, for every candidate alike.

The series are split in two halves by a fixed hash of the file name (`half`): "search" chooses settings,
"check" is held out. Each series gets 2 to 5 events (uniform) at random rows after NAB's probation (the first
15%) and before its last 2%; 40% of them follow the previous event 20 to 90 points later (closer than the 100-point
refractory period), the others land anywhere at least 200 points from the last one. Windows follow NAB: centred
on the event's first row, 10% of the series over its event count wide, never reaching a neighbour's (as
bench/anomaly_synthetic.py's dense corpus).

Magnitudes are relative to the series' own robust scales, computed on the series before any injection:
`level` = 1.4826 x the MAD of the values, `step` = 1.4826 x the MAD of the first differences (each floored at 1% of
the range, and at 1e-9). Sizes are log-uniform between the limits below. The distribution was fixed before any
candidate was scored and not changed afterwards; it was chosen to span from "barely visible to an eye on a plot"
(a shift of 1.5 levels, a spike of 3 levels) to "obvious" (a spike of 15 levels), so that some events are not
findable by any setting (as in real data) and no kind dominates:

* spike / dip: one point +- 3 to 15 levels from the value before it;
* level shift: +- 1.5 to 6 levels from the event on (it persists);
* variance burst: 10 to 100 points with added Gaussian noise of 3 to 10 steps;
* stuck: 20 to 200 points held at the event's first value (a sensor drop-out);
* drift: a ramp reaching +- 2 to 8 levels over 50 to 500 points, kept after (a trend change);
* pattern break: 50 to 300 points replaced by the median of the 300 before + Gaussian noise of one step (the
  cycle, whatever it was, stops).

Kinds are drawn uniformly. Everything is seeded by (seed, file name), so a series' events do not depend on which
other series are in the folder.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.anomaly_synthetic import separate_windows
from bench.nab_scorer import read_series

KINDS = ("spike", "dip", "level_shift", "variance", "stuck", "drift", "pattern_break")
CLOSE_SHARE = 0.4  # events 20-90 points after the previous one
LIMITS = {  # (low, high) of the log-uniform sizes, in the series' own scales (see the module docstring)
    "spike": (3.0, 15.0),  # levels
    "level_shift": (1.5, 6.0),  # levels
    "variance": (3.0, 10.0),  # steps
    "drift": (2.0, 8.0),  # levels
}


@dataclass(frozen=True)
class Injected:
    name: str  # the real series' "<folder>/<file>.csv"
    values: np.ndarray  # the real values with the events in
    windows: list[tuple[int, int]]  # inclusive rows, NAB-style
    starts: list[int]  # each event's first row
    kinds: tuple[str, ...]


def half(name: str) -> str:
    """'search' or 'check', fixed by the file name's hash (not by its position in any listing)."""
    return "search" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "check"


def scales(values: np.ndarray) -> tuple[float, float]:
    """(level, step): robust scales of the values and of their first differences, floored at 1% of the range."""
    floor = max(0.01 * float(np.ptp(values)), 1e-9)
    level = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    step = 1.4826 * float(np.median(np.abs(np.diff(values) - np.median(np.diff(values)))))
    return max(level, floor), max(step, floor)


def _size(kind: str, rng: np.random.Generator) -> float:
    low, high = LIMITS[kind]
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _inject(values: np.ndarray, kind: str, at: int, room: int, level: float, step: float, rng) -> None:
    """One event of `kind` from row `at`; its transient part lasts at most `room` rows."""
    n = len(values)
    sign = float(rng.choice([-1.0, 1.0]))

    def span(low: int, high: int) -> slice:
        return slice(at, min(n, at + min(int(rng.integers(low, high + 1)), max(room, 3))))

    if kind in ("spike", "dip"):
        values[at] = values[at - 1] + (1.0 if kind == "spike" else -1.0) * _size("spike", rng) * level
    elif kind == "level_shift":
        values[at:] += sign * _size(kind, rng) * level
    elif kind == "variance":
        part = span(10, 100)
        values[part] += rng.normal(0.0, _size(kind, rng) * step, part.stop - part.start)
    elif kind == "stuck":
        part = span(20, 200)
        values[part] = values[at]
    elif kind == "drift":
        length = int(rng.integers(50, 501))
        ramp = sign * _size(kind, rng) * level * np.minimum(np.arange(1, n - at + 1) / length, 1.0)
        values[at:] += ramp
    else:  # pattern_break
        part = span(50, 300)
        values[part] = np.median(values[max(0, at - 300) : at]) + rng.normal(0.0, step, part.stop - part.start)


def inject(name: str, real: np.ndarray, seed: int) -> Injected:
    """`real` with 2-5 events, seeded by (seed, name)."""
    rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")])
    values = np.array(real, dtype=np.float64)
    n = len(values)
    level, step = scales(values)
    first, last = int(np.ceil(0.15 * n)) + 1, int(0.98 * n)
    count = int(rng.integers(2, 6))
    starts: list[int] = []
    for _ in range(count):
        if starts and rng.random() < CLOSE_SHARE:
            at = starts[-1] + int(rng.integers(20, 91))
        else:
            free = [a for a in range(first, last, 10) if all(abs(a - s) >= 200 for s in starts)]
            if not free:
                break
            at = int(rng.choice(free)) + int(rng.integers(0, 10))
        if first <= at < last and at not in starts:
            starts.append(at)
            starts.sort()
    kinds = tuple(str(rng.choice(KINDS)) for _ in starts)
    nxt = [*starts[1:], n]
    for at, following, kind in zip(starts, nxt, kinds, strict=True):
        _inject(values, kind, at, following - at - 1, level, step, rng)
    return Injected(name, values, separate_windows(starts, n), starts, kinds)


def injected_corpus(folder: Path, seed: int = 0, which: str = "search") -> list[Injected]:
    """Every */*.csv under `folder` in half `which` ('search', 'check' or 'all'), events injected."""
    items = []
    for path in sorted(folder.glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        if which in ("all", half(name)):
            items.append(inject(name, read_series(path)[1], seed))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="a folder of real series (*/*.csv)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for which in ("search", "check"):
        items = injected_corpus(args.real, args.seed, which)
        starts = [np.diff(s.starts) for s in items]
        close = sum(int((d < 100).sum()) for d in starts)
        print(
            f"{which}: {len(items)} series, {sum(len(s.values) for s in items):,} points, "
            f"{sum(len(s.starts) for s in items)} events ({close} less than 100 points after the one before)"
        )
        print("  kinds:", dict(Counter(k for s in items for k in s.kinds)))


if __name__ == "__main__":
    main()
