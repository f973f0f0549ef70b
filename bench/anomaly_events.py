"""Choose the detector's event settings (warm-up, youth, quiet, onset) on synthetic series and unlabelled real ones.

    nice -n 10 python -m bench.anomaly_events --seed 0 --series 100 --calibrate ../shared/data/nab/data

Starts from the served settings (models/nearest_context/2, chosen by bench/anomaly_defaults.py) and searches only
what that search could not see: the synthetic corpus of bench/anomaly_synthetic.py spaces its anomalies a window
apart and after NAB's probation, so a long warm-up and refractory period cost nothing there. Here the corpus is
that one plus the dense corpus (`dense_corpus`: short series, events closer than the refractory period, the first
often inside the warm-up, missing values), and the objective is NAB's standard score over both (the real
Detector runs every candidate: the new rules are sequential, no replay). One coordinate pass, in the order of
EVENT_GRID, keeps each setting's best value before the next. Then, as for v2, threshold, tolerance and onset are
raised together (what a lower sensitivity does) until the alarm rate on the real series under `--calibrate`,
read without any label file, is no higher than the chosen settings' rate on the synthetic corpora. It prints
the chosen settings, the scores and event counts on both corpora and on held-out ones (seed + 1), and the
sensitivity curve on the synthetic corpora. NAB's labels are read by nothing here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from app.families.anomaly.detector import Detector, DetectorConfig, DetectorState
from bench.anomaly_defaults import STANDARD, Labelled, Scorer, unlabelled
from bench.anomaly_synthetic import corpus, dense_corpus

SERVED = Path(__file__).resolve().parents[1] / "models" / "nearest_context" / "2" / "detector.json"
# (warmup, young) together: a shorter warm-up with limits widened until the old one's length and past it.
EVENT_GRID: dict[str, tuple] = {
    "warmup_young": ((150, 0), (100, 300), (50, 300), (50, 600)),
    "youth": (0.0, 0.5, 1.0, 2.0),
    "quiet": (0, 10, 20, 40),
    "onset": (0.0, 8.0, 12.0, 20.0),
}
SENSITIVITIES = (0.25, 0.375, 0.5, 0.625, 0.75)


def alarms(config: DetectorConfig, values: np.ndarray, sensitivity: float = 0.5) -> np.ndarray:
    return Detector(config, sensitivity).update(DetectorState(), values).alarm


def run_all(config: DetectorConfig, items: Sequence[Labelled], sensitivity: float = 0.5) -> list[np.ndarray]:
    with ProcessPoolExecutor(2) as pool:
        futures = [pool.submit(alarms, config, s.values, sensitivity) for s in items]
        return [f.result() for f in futures]


@dataclass(frozen=True)
class Events:
    """Events found (an alarm in the event's window), those closer than `close` to the one before, those starting
    before `early` points (inside v2's 150-point warm-up), and alarms outside every window per 10,000 points."""

    found: int
    events: int
    close_found: int
    close: int
    false_per_10k: float
    early_found: int = 0
    early: int = 0

    def __str__(self) -> str:
        return (
            f"{self.found}/{self.events} events found ({100 * self.found / max(self.events, 1):.0f}%), "
            f"{self.close_found}/{self.close} of those <100 points after the one before, "
            f"{self.false_per_10k:.1f} false alarms per 10k points"
        )


def events(detections: Sequence[np.ndarray], items: Sequence[Labelled], close: int = 100, early: int = 150) -> Events:
    found = events_ = close_found = close_ = false = points = early_found = early_ = 0
    for d, s in zip(detections, items, strict=True):
        inside = np.zeros(len(d), dtype=bool)
        previous = -(10**9)
        for a, b in s.windows:
            hit = bool(d[a : b + 1].any())
            start = (a + b + 1) // 2
            found, events_ = found + hit, events_ + 1
            if start - previous < close:
                close_found, close_ = close_found + hit, close_ + 1
            if start < early:
                early_found, early_ = early_found + hit, early_ + 1
            previous = start
            inside[a : b + 1] = True
        false += int((d & ~inside).sum())
        points += len(d)
    return Events(found, events_, close_found, close_, 1e4 * false / points, early_found, early_)


def rate(detections: Sequence[np.ndarray]) -> float:
    """Alarms per 1,000 points: a label-free statistic."""
    return 1000.0 * sum(int(d.sum()) for d in detections) / sum(len(d) for d in detections)


def with_setting(config: DetectorConfig, name: str, value) -> DetectorConfig:
    if name == "warmup_young":
        return replace(config, warmup=value[0], young=value[1])
    return replace(config, **{name: value})


def scaled(config: DetectorConfig, factor: float) -> DetectorConfig:
    return replace(
        config,
        threshold=round(config.threshold * factor, 3),
        spatial_tolerance=round(config.spatial_tolerance * factor, 4),
        onset=round(config.onset * factor, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--calibrate", type=Path, help="a folder of real unlabelled series (*/*.csv)")
    parser.add_argument("--start", type=Path, default=SERVED, help="the starting settings (JSON)")
    args = parser.parse_args()
    start = DetectorConfig(**json.loads(args.start.read_text()))

    def labelled(seed: int) -> tuple[list[Labelled], list[Labelled]]:
        plain = [Labelled(s.name, s.values, s.windows) for s in corpus(seed, args.series)]
        dense = [Labelled(s.name, s.values, s.windows) for s in dense_corpus(seed, args.series)]
        return plain, dense

    plain, dense = labelled(args.seed)
    both = plain + dense
    scorer, dense_scorer, plain_scorer = Scorer(both, STANDARD), Scorer(dense, STANDARD), Scorer(plain, STANDARD)
    print(f"corpora seed {args.seed}: {len(plain)} + {len(dense)} dense series, {sum(len(s.values) for s in both):,}")

    def report(label: str, config: DetectorConfig, items: tuple[list[Labelled], list[Labelled]]) -> list[np.ndarray]:
        p, d = items
        found = run_all(config, p + d)
        ps, ds = Scorer(p, STANDARD)(found[: len(p)]), Scorer(d, STANDARD)(found[len(p) :])
        print(f"  {label}: standard {Scorer(p + d, STANDARD)(found):.1f} (corpus {ps:.1f}, dense {ds:.1f});")
        print(f"    dense: {events(found[len(p) :], d)}; corpus: {events(found[: len(p)], p)}", flush=True)
        return found

    config = start
    best = scorer(run_all(config, both))
    print(f"start: {best:.1f}", flush=True)
    for name, values in EVENT_GRID.items():
        chosen = config
        for value in values:
            trial = with_setting(config, name, value)
            if trial == config:
                continue
            found = run_all(trial, both)
            score = scorer(found)
            parts = f"corpus {plain_scorer(found[: len(plain)]):.1f}, dense {dense_scorer(found[len(plain) :]):.1f}"
            print(f"  {name}={value}: {score:.1f} ({parts}; {events(found[len(plain) :], dense)})", flush=True)
            if score > best:
                best, chosen = score, trial
        config = chosen
        print(f"{name} -> {config} ({best:.1f})", flush=True)
    searched = config
    target = rate(run_all(searched, both))
    if args.calibrate:
        real = unlabelled(args.calibrate)
        for step in range(0, 17):
            factor = 2.0 ** (step / 8)
            trial = scaled(searched, factor)
            real_rate = rate(run_all(trial, real))
            print(f"  x{factor:.3f}: {real_rate:.2f} alarms per 1,000 real points (synthetic: {target:.2f})")
            if real_rate <= target:
                config = trial
                break
    print(f"\nchosen: {json.dumps(asdict(config))}\n")
    for label, c in (("start", start), ("searched", searched), ("chosen", config)):
        report(f"{label}, seed {args.seed}", c, (plain, dense))
        report(f"{label}, seed {args.seed + 1} (held out)", c, labelled(args.seed + 1))
    print("\nsensitivity curve (chosen), standard score over both corpora, seed", args.seed)
    for s in SENSITIVITIES:
        print(f"  {s}: {scorer(run_all(config, both, s)):.1f}", flush=True)


if __name__ == "__main__":
    main()
