"""Choose the refractory period alone, the served detector's limits kept (models/nearest_context/4 came from this).

    nice -n 10 python -m bench.anomaly_refractory --real ../shared/data/nab/data --seed 0

The refractory period is what hides an event that comes soon after another (issue 29: the median gap between
events in real monitoring data is about 50 points, v2's period is 100). Every other setting stays v2's: its
threshold and tolerance were set by the alarm rate on real series, and candidates that moved them together with
the refractory period (models/nearest_context/3) alarm on new extremes of noise. No label file is read. Each
REFRACTORY value runs the real Detector on:

* the "search" half of NAB's values with injected events (bench/anomaly_injected.py, seed `seed`): the objective,
  the mean of NAB's standard and reward_low_FP_rate scores, as in bench/anomaly_injected_search.py;
* the "check" half (held out), the synthetic dense corpus (seeds `seed` and `seed + 1`: events closer than 100
  points) and the plain synthetic corpus, printed and not used to choose;
* the real series unlabelled: alarms per 1,000 points, a label-free statistic.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app.families.anomaly.detector import DetectorConfig
from bench.anomaly_defaults import Labelled, unlabelled
from bench.anomaly_events import events, rate, run_all
from bench.anomaly_injected import injected_corpus
from bench.anomaly_injected_search import Objective, labelled, parse_args
from bench.anomaly_synthetic import corpus, dense_corpus

REFRACTORY = (100, 50, 40, 30, 20, 10)


HEADER = (
    "mean of standard and low-FP; standard; events found, of them < 100 points after the one before, of them starting"
    " in the first 150 points; false alarms per 10k points"
)


def corpora(real: Path, seed: int) -> dict[str, list[Labelled]]:
    """The labelled sets every candidate is run on: the injected halves, the dense corpora (seeds `seed` and
    `seed + 1`) and the plain corpus."""
    return {
        "search half": labelled(injected_corpus(real, seed, "search")),
        "check half": labelled(injected_corpus(real, seed, "check")),
        **{f"dense seed {s}": labelled(dense_corpus(s, 100)) for s in (seed, seed + 1)},
        f"plain seed {seed}": labelled(corpus(seed, 100)),
    }


def cells(config: DetectorConfig, sets: dict[str, list[Labelled]], real: list[Labelled]) -> tuple[list[str], float]:
    """One table row's cells for `config` (HEADER; the last: alarms per 1,000 real points) and its objective."""
    out, objective = [], 0.0
    for name, items in sets.items():
        found = run_all(config, items)
        mean, standard, _ = Objective(items)(found)
        e = events(found, items)
        found_ = f"{e.found}/{e.events}, {e.close_found}/{e.close}, {e.early_found}/{e.early}"
        out.append(f"{mean:.1f}; {standard:.1f}; {found_}; {e.false_per_10k:.1f}")
        objective = mean if name == "search half" else objective
    out.append(f"{rate(run_all(config, real)):.2f}")
    return out, objective


def main() -> None:
    args, start = parse_args(__doc__, "the settings kept (JSON)")
    sets, real = corpora(args.real, args.seed), unlabelled(args.real)
    print("refractory | " + " | ".join(sets) + " | real series, alarms per 1,000 points")
    print(HEADER + "\n")
    best = (float("-inf"), start.refractory)
    for refractory in REFRACTORY:
        row, objective = cells(replace(start, refractory=refractory), sets, real)
        if objective > best[0]:
            best = (objective, refractory)
        print(f"| {refractory} | " + " | ".join(row) + " |", flush=True)
    print(f"\nchosen: refractory {best[1]} (search half {best[0]:.1f})")


if __name__ == "__main__":
    main()
