"""Choose the detector's alarm and event settings on real series with injected events (bench/anomaly_injected.py).

    nice -n 10 python -m bench.anomaly_injected_search --real ../shared/data/nab/data --seed 0

No label file is read: the corpus is the real series' values with known injected events, their own anomalies
unknown (an alarm on one is a false alarm for every candidate alike). Objective: the mean of NAB's standard and
reward_low_FP_rate scores on the "search" half (so a candidate cannot buy standard score with false alarms).

1. Alarm settings by replay (bench/anomaly_defaults.py's grid: threshold, spatial_tolerance, record,
   record_halflife, refractory), on the detector's scores at the served settings (one run of the Detector).
2. Event rules with the real Detector (they are sequential: no replay), one coordinate pass in the order of
   EVENT_GRID from step 1's choice, each setting's best kept before the next; then the threshold (with the
   tolerance) x 2^(+-1/4) around it.

No alarm-rate calibration follows: the backgrounds are real, so their oddities already cost the candidates false
alarms. It prints the choice, the "check" half (held out) and the synthetic dense corpus (bench/anomaly_synthetic.py,
seeds `seed` and `seed + 1`: events closer than the refractory period) for the served settings and the choice.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from app.families.anomaly.detector import DetectorConfig
from bench.anomaly_defaults import STANDARD, Labelled, Scorer, Trace, best_alarm_settings
from bench.anomaly_events import events, run_all, scaled  # scales onset too: 0 in every setting scaled here
from bench.anomaly_injected import injected_corpus
from bench.anomaly_synthetic import dense_corpus

SERVED = Path(__file__).resolve().parents[1] / "models" / "nearest_context" / "2" / "detector.json"
LOW_FP = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22}  # NAB's reward_low_FP_rate profile
# (warmup, young, youth) together: a shorter warm-up with limits widened until past the old one's length.
EVENT_GRID: dict[str, tuple] = {
    "warmup_young_youth": ((150, 0, 0.0), (100, 300, 1.0)),
    # (quiet, quiet_growth) together: a fixed quiet alone re-alarms inside long disturbed stretches, which is what
    # the growth is for, so neither is judged without the other.
    "quiet_growth": ((0, 0.0), (10, 0.0), (30, 0.0), (10, 0.5), (10, 2.0), (30, 0.5)),
    "onset": (0.0, 12.0),
}


class Objective:
    def __init__(self, items: list[Labelled]) -> None:
        self.items = items
        self.standard, self.low_fp = Scorer(items, STANDARD), Scorer(items, LOW_FP)

    def __call__(self, found: list[np.ndarray]) -> tuple[float, float, float]:
        standard, low_fp = self.standard(found), self.low_fp(found)
        return (standard + low_fp) / 2, standard, low_fp


def with_setting(config: DetectorConfig, name: str, value) -> DetectorConfig:
    if name == "warmup_young_youth":
        return replace(config, warmup=value[0], young=value[1], youth=value[2])
    if name == "quiet_growth":
        return replace(config, quiet=value[0], quiet_growth=value[1])
    return replace(config, **{name: value})


def labelled(items) -> list[Labelled]:
    return [Labelled(s.name, s.values, s.windows) for s in items]


def parse_args(doc: str, start_help: str) -> tuple[argparse.Namespace, DetectorConfig]:
    """--real, --seed and --start (the served settings by default), and the settings --start names."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="a folder of real series (*/*.csv), no labels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=Path, default=SERVED, help=start_help)
    args = parser.parse_args()
    return args, DetectorConfig(**json.loads(args.start.read_text()))


def main() -> None:
    args, start = parse_args(__doc__, "the starting settings (JSON)")
    search = labelled(injected_corpus(args.real, args.seed, "search"))
    objective = Objective(search)
    print(f"search half: {len(search)} series, {sum(len(s.values) for s in search):,} points", flush=True)

    def line(label: str, found: list[np.ndarray], items: list[Labelled], scores) -> str:
        mean, standard, low_fp = scores
        return f"  {label}: {mean:.1f} (standard {standard:.1f}, low-FP {low_fp:.1f}); {events(found, items)}"

    found = run_all(start, search)
    print(line("start (served)", found, search, objective(found)), flush=True)
    config, _ = best_alarm_settings(_traces(start, search), lambda found: objective(found)[0], start)
    found = run_all(config, search)
    best = objective(found)
    print(f"alarm grid (replay) -> {_show(config)}", flush=True)
    print(line("alarm grid", found, search, best), flush=True)
    grid = dict(EVENT_GRID, threshold=(2 ** (-1 / 4), 2 ** (1 / 4)))
    for name, values in grid.items():
        chosen = config
        for value in values:
            trial = scaled(config, value) if name == "threshold" else with_setting(config, name, value)
            if trial == config:
                continue
            found = run_all(trial, search)
            scores = objective(found)
            print(line(f"{name}={value}", found, search, scores), flush=True)
            if scores[0] > best[0]:
                best, chosen = scores, trial
        config = chosen
        print(f"{name} -> {_show(config)} ({best[0]:.1f})", flush=True)
    print(f"\nchosen: {json.dumps(asdict(config))}\n")
    check = labelled(injected_corpus(args.real, args.seed, "check"))
    check_objective = Objective(check)
    for label, c in (("served", start), ("chosen", config)):
        found = run_all(c, check)
        print(line(f"{label}, check half (held out)", found, check, check_objective(found)), flush=True)
        for seed in (args.seed, args.seed + 1):
            dense = labelled(dense_corpus(seed, 100))
            found = run_all(c, dense)
            print(line(f"{label}, dense seed {seed}", found, dense, Objective(dense)(found)), flush=True)


def _traces(config: DetectorConfig, items: list[Labelled]) -> list[Trace]:
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(Trace.run, [config] * len(items), [s.values for s in items]))


def _show(config: DetectorConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in asdict(config).items() if k not in ("block", "min_distance"))


if __name__ == "__main__":
    main()
