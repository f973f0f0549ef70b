"""The Numenta Anomaly Benchmark's scoring rules, in numpy: windows, scaled sigmoid, cost profiles, normalisation.

The rules are NAB's own (numenta/NAB `nab/sweeper.py`, the scorer behind its published scoreboard):

* A series' first `min(floor(0.15 * n), 750)` rows are its probationary period: detections there are not scored.
* Each labelled window counts once: -fnWeight if nothing in it is detected, else the scaled sigmoid of the first
  detection's position (``-(right - i + 1) / width``), divided by its value at the left edge, times tpWeight.
* Every detection outside a window costs fpWeight times the scaled sigmoid of its distance past the preceding
  window's right edge (``|i - right| / (width - 1)``), or -fpWeight when no window precedes it.
* A corpus score is normalised to 100 * (raw - null) / (perfect - null), where the null detector detects nothing
  and the perfect one detects the first scorable row of every window.

A detection is a row whose anomaly score is >= the threshold. Run `python -m bench.nab_scorer` to reproduce the
published scoreboard from the published detector outputs (the proof that these rules are NAB's).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAB_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
PROBATION_PERCENT = 0.15
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
Windows = list[tuple[int, int]]  # inclusive row indices [left, right] of each labelled window


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """NAB's reward curve: ~+1 at a window's left edge (-1.0), 0 at its right edge, -1 from 3 widths past it."""
    value = 2.0 / (1.0 + np.exp(5.0 * np.asarray(position, dtype=np.float64))) - 1.0
    return np.where(np.asarray(position) >= 3.0, -1.0, value)


MAX_TP = float(scaled_sigmoid(np.array(-1.0)))


def probation_length(n_rows: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * 5000))


def parse_timestamps(texts: list[str]) -> np.ndarray:
    return np.array([t.strip().replace(" ", "T") for t in texts], dtype="datetime64[us]")


def read_series(path: Path, column: str = "value") -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, values of `column`) of a NAB data or results CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return parse_timestamps([r["timestamp"] for r in rows]), np.array([float(r[column]) for r in rows])


def load_windows(nab_root: Path = NAB_ROOT) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """Window limits per series ("category/name.csv"), as timestamps."""
    raw = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    return {name: [tuple(parse_timestamps(list(pair))) for pair in limits] for name, limits in raw.items()}


def load_profiles(nab_root: Path = NAB_ROOT) -> dict[str, dict[str, float]]:
    """Cost matrix per profile name, from NAB's profiles.json."""
    raw = json.loads((nab_root / "published" / "profiles.json").read_text())
    return {name: raw[name]["CostMatrix"] for name in PROFILE_NAMES}


def window_rows(timestamps: np.ndarray, limits: list[tuple[np.datetime64, np.datetime64]]) -> Windows:
    """Inclusive row ranges of the windows, given as timestamp limits."""
    rows = []
    for start, end in limits:
        left = int(np.searchsorted(timestamps, start, side="left"))
        right = int(np.searchsorted(timestamps, end, side="right")) - 1
        if right >= left:
            rows.append((left, right))
    return rows


@dataclass(frozen=True)
class SeriesScore:
    raw: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detected rows outside every window
    windows: int


def score_series(detections: np.ndarray, windows: Windows, cost: Mapping[str, float]) -> SeriesScore:
    """NAB's raw score of one series' boolean detections."""
    n = len(detections)
    probation = probation_length(n)
    detected = np.flatnonzero(np.asarray(detections, dtype=bool))
    detected = detected[detected >= probation]
    in_window = np.zeros(n, dtype=bool)
    raw, tp, fn, counted = 0.0, 0, 0, 0
    for left, right in windows:
        in_window[left : right + 1] = True
        if right < probation:
            continue  # NAB drops windows that lie wholly inside the probationary period
        counted += 1
        hits = detected[(detected >= left) & (detected <= right)]
        if len(hits) == 0:
            raw -= cost["fnWeight"]
            fn += 1
        else:
            position = -(right - hits[0] + 1) / (right - left + 1)
            raw += float(scaled_sigmoid(np.array(position))) * cost["tpWeight"] / MAX_TP
            tp += 1
    false_pos = detected[~in_window[detected]]
    if len(false_pos):
        rights = np.array([r for _, r in windows], dtype=np.int64)
        widths = np.array([r - lft + 1 for lft, r in windows], dtype=np.float64)
        before = np.searchsorted(rights, false_pos, side="right") - 1  # the closest window ending before the row
        position = np.full(len(false_pos), 3.0)
        has = before >= 0
        position[has] = np.abs(false_pos[has] - rights[before[has]]) / (widths[before[has]] - 1)
        raw += float(scaled_sigmoid(position).sum()) * cost["fpWeight"]
    return SeriesScore(raw, tp, fn, len(false_pos), counted)


def perfect_detections(n_rows: int, windows: Windows) -> np.ndarray:
    """The perfect detector: the first scorable row of every window, nothing else."""
    detections = np.zeros(n_rows, dtype=bool)
    probation = probation_length(n_rows)
    for left, right in windows:
        if right >= probation:
            detections[max(left, probation)] = True
    return detections


def normalised(raw: float, null: float, perfect: float) -> float:
    """100 for the perfect detector, 0 for the null one; NaN where there is no window to find."""
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else math.nan


def corpus_scores(
    detections: Mapping[str, np.ndarray], windows: Mapping[str, Windows], profiles: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """Normalised score per profile, for every category ("realTweets", ...) and for "all" series together."""
    result: dict[str, dict[str, float]] = {}
    for profile, cost in profiles.items():
        sums: dict[str, np.ndarray] = {}
        for name, det in detections.items():
            n = len(det)
            parts = np.array(
                [
                    score_series(det, windows[name], cost).raw,
                    score_series(np.zeros(n, dtype=bool), windows[name], cost).raw,
                    score_series(perfect_detections(n, windows[name]), windows[name], cost).raw,
                ]
            )
            for key in (name.split("/")[0], "all"):
                sums[key] = sums.get(key, np.zeros(3)) + parts
        result[profile] = {key: normalised(*map(float, s)) for key, s in sorted(sums.items())}
    return result


def published_detections(detector: str, profile: str, nab_root: Path = NAB_ROOT) -> dict[str, np.ndarray]:
    """Detections of a published detector's results at its published threshold for `profile`."""
    threshold = json.loads((nab_root / "published" / "thresholds.json").read_text())[detector][profile]["threshold"]
    folder = nab_root / "published" / "results" / detector
    out = {}
    for path in sorted(folder.glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name.removeprefix(detector + '_')}"
        _, scores = read_series(path, column="anomaly_score")
        out[name] = scores >= threshold
    return out


def published_score(detector: str, profile: str, nab_root: Path = NAB_ROOT) -> float:
    """Our score of a published detector's outputs (compare with final_results.json)."""
    detections = published_detections(detector, profile, nab_root)
    limits = load_windows(nab_root)
    windows = {}
    for name in detections:
        timestamps, _ = read_series(nab_root / "data" / name)
        windows[name] = window_rows(timestamps, limits[name])
    profiles = {profile: load_profiles(nab_root)[profile]}
    return corpus_scores(detections, windows, profiles)[profile]["all"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=NAB_ROOT, help="NAB root (data/, labels/, published/)")
    parser.add_argument("--detectors", nargs="+", default=["numenta", "windowedGaussian", "null"])
    args = parser.parse_args()
    published = json.loads((args.nab / "published" / "final_results.json").read_text())
    print(f"{'detector':18} {'profile':20} {'ours':>8} {'published':>10} {'diff':>7}")
    for detector in args.detectors:
        for profile in PROFILE_NAMES:
            ours, theirs = published_score(detector, profile, args.nab), published[detector][profile]
            print(f"{detector:18} {profile:20} {ours:8.2f} {theirs:10.2f} {ours - theirs:7.3f}")


if __name__ == "__main__":
    main()
