"""How young a detector several channels need: chance alarms on fault-free runs against events found, per setting.

    nice -n 10 python -m bench.anomaly_young_channels --cache /tmp/tep_cache [--seed 0] [--variants off,served]

Right after the 150-row warm-up a channel's seen range, the reference of the detector's range rule, is that of 150
rows, so the next few hundred rows bring new extremes by chance. For each setting of the multichannel rule's young
detector (app/families/anomaly/multivariate.py: YOUNG rows, a channel's limits x(1 + CHANNEL_YOUTH) and a
departure's x(1 + DEPARTURE_YOUTH) at the end of the warm-up), it counts, label-free:

* the alarms on the Tennessee Eastman fault-free runs that fit bench/anomaly_tep.py's T^2 (seeds 1001-1005, never
  the measured runs; 50 channels as that bench groups them), and how many fall before row 350;
* events found per kind and false alarms per 10k rows on bench/anomaly_multivariate.py's synthetic corpus (30
  series of `--seed`).

The served setting was the one with the fewest fault-free alarms among those that find as many synthetic events of
each kind (seed 0) as the rule without a young detector; seed 1 and the TEP faults were measured once, after.
The simulated runs are read from `--cache` (bench/anomaly_tep.py writes them there; simulating needs the `[tep]`
extra).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from app.families.anomaly import multivariate
from app.families.anomaly.detector import DetectorConfig
from bench.anomaly_multivariate import KINDS, SERVED, Tally, corpus
from bench.anomaly_tep import GROUPS, cached, column

FITTING_SEEDS = (1001, 1002, 1003, 1004, 1005)
WARM = 350  # alarms before this row are "early": the 200 rows after the warm-up
# name: (YOUNG, CHANNEL_YOUTH, DEPARTURE_YOUTH); a youth of 0 is no young detector
VARIANTS = {
    "off": (0, 0.0, 0.0),
    "departures 450 x2": (450, 0.0, 2.0),
    "departures 600 x1": (600, 0.0, 1.0),
    "departures 600 x2": (600, 0.0, 2.0),
    "departures 900 x2": (900, 0.0, 2.0),
    "channels only 600 x2": (600, 2.0, 0.0),
    "both 600 x1": (600, 1.0, 1.0),
    "both 600 x2": (600, 2.0, 2.0),
    "served": (multivariate.YOUNG, multivariate.CHANNEL_YOUTH, multivariate.DEPARTURE_YOUTH),
}


def use(variant: tuple[int, float, float]) -> None:
    multivariate.YOUNG, multivariate.CHANNEL_YOUTH, multivariate.DEPARTURE_YOUTH = variant


def fault_free(variant: tuple[int, float, float], seed: int, cache: Path, config: DetectorConfig) -> tuple[int, int]:
    use(variant)
    run = cached(0, seed, cache)
    alarms = [
        a.index
        for names in GROUPS.values()
        for a in multivariate.score(run.values[:, [column(x) for x in names]], list(names), config=config).alarms
    ]
    return len(alarms), sum(i < WARM for i in alarms)


def synthetic(variant: tuple[int, float, float], seed: int, index: int, config: DetectorConfig) -> Tally:
    use(variant)
    s = corpus(seed, 30)[index]
    tally = Tally.empty()
    names = [str(c) for c in range(s.values.shape[1])]
    tally.add(multivariate.score(s.values, names, config=config), s.events, len(s.values))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="bench/anomaly_tep.py's cache of simulated runs")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic corpus' seed")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    config = DetectorConfig(**json.loads(SERVED.read_text()))
    rows = len(FITTING_SEEDS) * len(GROUPS) * len(cached(0, FITTING_SEEDS[0], args.cache).values)
    print(
        f"| setting (young, channel youth, departure youth) | TEP fault-free alarms (before row {WARM}) | per 10k "
        f"rows | synthetic seed {args.seed}: one / several / correlation found | false / 10k rows |"
    )
    print("|---|---|---|---|---|")
    for name in args.variants.split(","):
        variant = VARIANTS[name]
        with ProcessPoolExecutor(args.workers) as pool:
            tep = list(pool.map(fault_free, [variant] * 5, FITTING_SEEDS, [args.cache] * 5, [config] * 5))
            tallies = list(pool.map(synthetic, [variant] * 30, [args.seed] * 30, range(30), [config] * 30))
        found = {k: sum(t.found[k] for t in tallies) for k in KINDS}
        events = {k: sum(t.events[k] for t in tallies) for k in KINDS}
        false = 1e4 * sum(t.false for t in tallies) / sum(t.rows for t in tallies)
        alarms, early = sum(a for a, _ in tep), sum(e for _, e in tep)
        cells = " / ".join(f"{found[k]}/{events[k]}" for k in KINDS)
        per_10k = 1e4 * alarms / rows
        print(f"| {name} {variant} | {alarms} ({early}) | {per_10k:.1f} | {cells} | {false:.1f} |", flush=True)


if __name__ == "__main__":
    main()
