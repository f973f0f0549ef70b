"""How fast a channel's false alarms fall as its limits widen, on fault-free series: the measurement behind
multivariate.SERIES_WIDENING (a request of m scored series widens each one's limits x (1 + SERIES_WIDENING ln m)).

    nice -n 10 python -m bench.anomaly_channel_line --tep-cache /tmp/tep_cache [--series 10]

Each channel is scored alone by the served detector (sensitivity 0.5) with its threshold and spatial tolerance
times f, for each f in FACTORS, on fault-free series only (no labels): the Tennessee Eastman runs that fit
Hotelling T^2 in bench/anomaly_tep.py (seeds 1001-1005, 50 channels each; never the runs the TEP table measures)
and the synthetic corpus of bench/anomaly_multivariate.py with no events injected (seed 0). Printed: alarms per
10k scored channel rows at each f, their share of f = 1's, and the rate a of a tail falling as exp(-a (f - 1)) that
this share gives (with a least-squares a over every f with alarms). m series alarm about as often as one when each
is widened until its share is 1 / m: f = 1 + ln(m) / a (Bonferroni for that tail), so SERIES_WIDENING = 1 / a.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from app.families.anomaly import multivariate, series
from app.families.anomaly.detector import DetectorConfig
from bench.anomaly_multivariate import SERVED, make_series
from bench.anomaly_tep import CHANNELS, cached

FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)
TEP_SEEDS = (1001, 1002, 1003, 1004, 1005)


def alarms(values: np.ndarray, config: DetectorConfig) -> tuple[list[int], int]:
    """Alarms of one channel at each factor, and its scored rows."""
    counts = []
    for f in FACTORS:
        scored = series.score_series(values, 0.5, True, multivariate.widened(config, f))
        counts.append(int(scored.alarm.sum()))
    return counts, int((~(scored.warming_up | scored.missing)).sum())


def report(name: str, results: list[tuple[list[int], int]]) -> None:
    counts = np.sum([c for c, _ in results], axis=0)
    rows = sum(r for _, r in results)
    print(f"\n{name}: {len(results)} channels, {rows} scored rows")
    print("| f | alarms | per 10k channel rows | share of f = 1 | a (share = exp(-a (f - 1))) |")
    print("|---|---|---|---|---|")
    for f, n in zip(FACTORS, counts, strict=True):
        share = n / counts[0]
        a = f"{-np.log(share) / (f - 1):.2f}" if f > 1 and n else "-"
        print(f"| {f:g} | {n} | {1e4 * n / rows:.1f} | {share:.3f} | {a} |")
    x = np.array([f - 1 for f, n in zip(FACTORS, counts, strict=True) if n])
    y = np.array([-np.log(n / counts[0]) for n in counts if n])
    a = float(x @ y / (x @ x))
    print(f"least squares: a = {a:.2f}, so 1 / a = {1 / a:.2f} per ln m")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tep-cache", type=Path, default=None, help="bench/anomaly_tep.py's --cache (else simulate)")
    parser.add_argument("--series", type=int, default=10, help="synthetic series (seed 0, no events)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = DetectorConfig(**json.loads(SERVED.read_text()))
    rng = np.random.default_rng(0)
    synthetic = [make_series(rng, events=False).values for _ in range(args.series)]
    tep = [cached(0, seed, args.tep_cache).values for seed in TEP_SEEDS]
    columns = {
        "Tennessee Eastman, fault-free seeds 1001-1005": [v[:, c] for v in tep for c in CHANNELS],
        f"Synthetic corpus, seed 0, no events, {args.series} series": [
            v[:, c] for v in synthetic for c in range(v.shape[1])
        ],
    }
    with ProcessPoolExecutor(args.workers) as pool:
        for name, channels in columns.items():
            report(name, list(pool.map(alarms, channels, [config] * len(channels))))


if __name__ == "__main__":
    main()
