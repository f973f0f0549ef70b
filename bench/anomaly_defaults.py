"""Choose the anomaly detector's defaults on the synthetic labelled corpus (bench/anomaly_synthetic.py), not on NAB.

    nice -n 10 python -m bench.anomaly_defaults --seed 0 --series 100 --calibrate ../shared/data/nab/data

The score is NAB's standard profile (bench/nab_scorer.py's rules) over the corpus, anomaly-free series included.
The search is one pass of coordinate ascent from the given starting settings: for each setting that changes the
scores (embed, history, baseline, warmup), in that order, each candidate value is run through the real Detector
over the corpus, and for each the alarm settings (threshold, spatial_tolerance, record, record_halflife,
refractory) are searched on a full grid by replaying the detector's alarm rule on its scores (`replay_alarms`,
which gives exactly the Detector's alarms: tests/test_anomaly_defaults.py); the best value is kept before the
next setting. Then it prints the sensitivity curve and the score on a second corpus (seed + 1) that played no part
in the choice, for the chosen and the starting settings.

With `--calibrate FOLDER` (real series, unlabelled: every */*.csv under it, e.g. NAB's data/ folder; no label
file is read) the searched settings are then calibrated to real data by alarm rate, a label-free statistic: the
threshold and the spatial tolerance are raised together (as a lower sensitivity does, in steps of 2^(1/8)) until
the alarms per 1,000 scored points on those series are no more than the searched settings' on the synthetic
corpus. The search's best operating point is an alarm rate, not a raw score value: real series have more
unlabelled oddities than the synthetic ones, so the same threshold alarms more often on them.

With `--nab ROOT` it also scores the chosen and the starting settings, and the sensitivity curve, on NAB's labelled
corpus: a report only, after the choice (nothing from NAB's labels enters it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from app.families.anomaly.detector import Detector, DetectorConfig, DetectorState
from bench.anomaly_synthetic import corpus
from bench.nab_scorer import NAB_ROOT, perfect_detections, score_series

PREVIOUS = Path(__file__).resolve().parents[1] / "models" / "nearest_context" / "1" / "detector.json"
STANDARD = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11}  # NAB's standard profile (published/profiles.json)

STRUCTURAL = {
    "embed": (16, 32, 64),
    "history": (1000, 3000, 6000),
    "baseline": (300, 1000, 3000),
    "warmup": (100, 150, 300),
}
GRID = {
    "threshold": (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0),
    "spatial_tolerance": (0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
    "record": (100, 300, 1000, 3000),
    "record_halflife": (0.0, 150.0, 600.0, 2000.0),
    "refractory": (10, 30, 100, 300),
}
SENSITIVITIES = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)


@dataclass(frozen=True)
class Labelled:
    name: str
    values: np.ndarray
    windows: list[tuple[int, int]]


@dataclass(frozen=True)
class Trace:
    """What the alarm rule needs of one series: the detector's scores (NaN in warm-up), the values and the range
    of the values before each point."""

    score: np.ndarray
    values: np.ndarray
    low: np.ndarray  # min of values[:i]
    high: np.ndarray

    @classmethod
    def run(cls, config: DetectorConfig, values: np.ndarray) -> Trace:
        score = Detector(config).update(DetectorState(), values).score
        low = np.concatenate([[np.inf], np.minimum.accumulate(values)[:-1]])
        high = np.concatenate([[-np.inf], np.maximum.accumulate(values)[:-1]])
        return cls(score, values, low, high)


def record_bar(scores: np.ndarray, record: int, halflife: float) -> np.ndarray:
    """Per scored point, the highest of the previous `record` scores, each halved every `halflife` points of age
    (the detector's record rule; -inf before any)."""
    age = np.arange(record, 0, -1)
    decay = 0.5 ** (age / halflife) if halflife > 0 else np.ones(record)
    padded = np.concatenate([np.full(record, -np.inf), scores])
    bar = np.empty(len(scores))
    for start in range(0, len(scores), 1024):  # rows of `record` values, 1,024 at a time
        rows = sliding_window_view(padded[start : start + min(1024, len(scores) - start) + record - 1], record)
        bar[start : start + len(rows)] = (rows * decay).max(axis=1)
    return bar


def refractory_filter(candidates: Iterable[int], refractory: int) -> list[int]:
    alarms: list[int] = []
    for i in candidates:
        if not alarms or i - alarms[-1] > refractory:
            alarms.append(int(i))
    return alarms


def replay_alarms(trace: Trace, config: DetectorConfig, factor: float = 1.0) -> np.ndarray:
    """The Detector's alarms for `config` (at a sensitivity whose factor multiplies threshold and tolerance; the young
    detector's widening included), from scores computed under any config with the same embed, history, baseline
    and warmup. The event rules (quiet, onset) are not replayed."""
    scored = np.isfinite(trace.score)
    first = int(np.argmax(scored)) if scored.any() else len(trace.score)
    bar = np.full(len(trace.score), np.inf)
    bar[first:] = record_bar(trace.score[first:], config.record, config.record_halflife)
    wide = np.full(len(trace.score), float(factor))
    detector = Detector(config)
    wide[: config.young] *= [detector.youth_factor(i) for i in range(min(config.young, len(wide)))]
    factor = wide
    return _alarms(trace, bar, config.threshold * factor, config.spatial_tolerance * factor, config.refractory)


def _alarms(
    trace: Trace, bar: np.ndarray, threshold: float | np.ndarray, tolerance: float | np.ndarray, refractory: int
) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        surprise = (trace.score >= threshold) & (trace.score >= bar)
        margin = tolerance * (trace.high - trace.low)
        outside = (margin > 0) & ((trace.values > trace.high + margin) | (trace.values < trace.low - margin))
    outside &= np.isfinite(trace.score)
    alarms = np.zeros(len(trace.score), dtype=bool)
    alarms[refractory_filter(np.flatnonzero(surprise | outside), refractory)] = True
    return alarms


class Scorer:
    """NAB's normalised score of detections over a labelled corpus, one cost profile, null and perfect cached."""

    def __init__(self, items: Sequence[Labelled], cost: dict[str, float]) -> None:
        self.items, self.cost = items, cost
        self.null = sum(score_series(np.zeros(len(s.values), bool), s.windows, cost).raw for s in items)
        perfect = (score_series(perfect_detections(len(s.values), s.windows), s.windows, cost).raw for s in items)
        self.perfect = sum(perfect)

    def __call__(self, detections: Sequence[np.ndarray]) -> float:
        raw = sum(score_series(d, s.windows, self.cost).raw for d, s in zip(detections, self.items, strict=True))
        return 100.0 * (raw - self.null) / (self.perfect - self.null)


def best_alarm_settings(
    traces: list[Trace], scorer: Callable[[Sequence[np.ndarray]], float], start: DetectorConfig
) -> tuple[DetectorConfig, float]:
    """The grid's best alarm settings for these traces (ties: the first in grid order)."""
    best: tuple[float, DetectorConfig] = (-np.inf, start)
    for record, halflife in itertools.product(GRID["record"], GRID["record_halflife"]):
        bars = []
        for t in traces:
            scored = np.isfinite(t.score)
            first = int(np.argmax(scored)) if scored.any() else len(t.score)
            bar = np.full(len(t.score), np.inf)
            bar[first:] = record_bar(t.score[first:], record, halflife)
            bars.append(bar)
        for threshold, tolerance, refractory in itertools.product(
            GRID["threshold"], GRID["spatial_tolerance"], GRID["refractory"]
        ):
            score = scorer([_alarms(t, b, threshold, tolerance, refractory) for t, b in zip(traces, bars, strict=True)])
            if score > best[0]:
                config = replace(
                    start,
                    threshold=threshold,
                    spatial_tolerance=tolerance,
                    record=record,
                    record_halflife=halflife,
                    refractory=refractory,
                )
                best = (score, config)
    return best[1], best[0]


def traces_for(config: DetectorConfig, items: Sequence[Labelled]) -> list[Trace]:
    return [Trace.run(config, s.values) for s in items]


def choose(items: Sequence[Labelled], scorer: Scorer, start: DetectorConfig) -> DetectorConfig:
    config, cache = start, {}
    for name, candidates in STRUCTURAL.items():
        results = []
        for value in candidates:
            trial = replace(config, **{name: value})
            key = tuple(getattr(trial, k) for k in STRUCTURAL)
            if key not in cache:
                started = time.perf_counter()
                cache[key] = best_alarm_settings(traces_for(trial, items), scorer, trial)
                print(f"  {name}={value}: {cache[key][1]:.1f} ({time.perf_counter() - started:.0f} s)", flush=True)
            results.append(cache[key])
        config, score = max(results, key=lambda r: r[1])
        print(f"{name} -> {getattr(config, name)} (score {score:.1f})", flush=True)
    return config


def score_config(config: DetectorConfig, items: Sequence[Labelled], scorer: Scorer, factor: float = 1.0) -> float:
    return scorer([replay_alarms(t, config, factor) for t in traces_for(config, items)])


def sensitivity_curve(config: DetectorConfig, items: Sequence[Labelled], scorer: Scorer) -> list[float]:
    traces = traces_for(config, items)
    return [scorer([replay_alarms(t, config, 4.0 ** (1 - 2 * s)) for t in traces]) for s in SENSITIVITIES]


def synthetic(seed: int, series: int) -> list[Labelled]:
    return [Labelled(s.name, s.values, s.windows) for s in corpus(seed, series)]


def nab(root: Path) -> list[Labelled]:
    from bench.nab_scorer import load_windows, read_series, window_rows

    limits = load_windows(root)
    items = []
    for path in sorted((root / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        timestamps, values = read_series(path)
        items.append(Labelled(name, values, window_rows(timestamps, limits[name])))
    return items


def unlabelled(folder: Path) -> list[Labelled]:
    """Every */*.csv under `folder` (a `value` column), without windows: only label-free statistics use them."""
    from bench.nab_scorer import read_series

    return [Labelled(str(p), read_series(p)[1], []) for p in sorted(folder.glob("*/*.csv"))]


def alarm_rate(traces: Sequence[Trace], config: DetectorConfig, factor: float = 1.0) -> float:
    """Alarms per 1,000 scored points (no labels needed)."""
    alarms = sum(int(replay_alarms(t, config, factor).sum()) for t in traces)
    return 1000.0 * alarms / sum(int(np.isfinite(t.score).sum()) for t in traces)


def calibrate(config: DetectorConfig, items: Sequence[Labelled], real: Sequence[Labelled]) -> DetectorConfig:
    """Threshold and tolerance scaled up together until the alarm rate on `real` is at most the one on `items`."""
    target = alarm_rate(traces_for(config, items), config)
    traces = traces_for(config, real)
    for step in range(0, 33):
        factor = 2.0 ** (step / 8)
        rate = alarm_rate(traces, config, factor)
        print(f"  x{factor:.3f}: {rate:.2f} alarms per 1,000 points on the real series (synthetic: {target:.2f})")
        if rate <= target:
            break
    tolerance = round(config.spatial_tolerance * factor, 4)
    return replace(config, threshold=round(config.threshold * factor, 3), spatial_tolerance=tolerance)


def show(config: DetectorConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in asdict(config).items() if k not in ("block", "min_distance"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--calibrate", type=Path, help="a folder of real unlabelled series (*/*.csv)")
    parser.add_argument("--nab", type=Path, help=f"also report on NAB's labelled corpus after the choice ({NAB_ROOT})")
    parser.add_argument("--start", type=Path, default=PREVIOUS, help="the starting settings (JSON)")
    args = parser.parse_args()
    cost = STANDARD
    start = DetectorConfig(**json.loads(args.start.read_text()))
    items = synthetic(args.seed, args.series)
    print(f"synthetic corpus seed {args.seed}: {len(items)} series, {sum(len(s.values) for s in items):,} points")
    scorer = Scorer(items, cost)
    chosen = choose(items, scorer, start)
    print(f"\nsearched: {show(chosen)}")
    if args.calibrate:
        chosen = calibrate(chosen, items, unlabelled(args.calibrate))
    print(f"\nchosen:   {show(chosen)}\nstarting: {show(start)}")
    held = synthetic(args.seed + 1, args.series)
    held_scorer = Scorer(held, cost)
    print(f"\n{'NAB standard score':30}{'chosen':>10}{'starting':>10}")
    for label, its, sc in (("synthetic (selection)", items, scorer), ("synthetic (held out)", held, held_scorer)):
        print(f"{label:30}{score_config(chosen, its, sc):10.1f}{score_config(start, its, sc):10.1f}")
    if args.nab:
        nab_items = nab(args.nab)
        nab_scorer = Scorer(nab_items, cost)
        print(
            f"{'NAB (report only)':30}{score_config(chosen, nab_items, nab_scorer):10.1f}"
            f"{score_config(start, nab_items, nab_scorer):10.1f}"
        )
    print("\nsensitivity curve (chosen settings), standard score:")
    print("sensitivity " + "".join(f"{s:>7}" for s in SENSITIVITIES))
    print("synthetic   " + "".join(f"{v:7.1f}" for v in sensitivity_curve(chosen, items, scorer)))
    if args.nab:
        print("NAB         " + "".join(f"{v:7.1f}" for v in sensitivity_curve(chosen, nab_items, nab_scorer)))


if __name__ == "__main__":
    main()
