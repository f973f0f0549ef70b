"""The Tennessee Eastman Process fault set through the served detector over HTTP: per fault, found or not, the
delay and the channels named; false alarms on fault-free runs; beside a Hotelling T^2 baseline.

    pip install -e '.[tep]'   # tep-studio (BSD, compiles its C model with gcc), not a service dependency
    nice -n 10 python -m bench.anomaly_tep [--faults 1-20] [--normal 10] [--cache /tmp/tep]

The set: the Tennessee Eastman Process (Downs & Vogel 1993), the classic public fault-detection benchmark, as
simulated by PyPI's `tep-studio` 0.2.0 (the revised model of Bathelt, Ricker & Jelali 2015, under Ricker's
decentralised multiloop PI control, mode 1). The runs follow the classic data set's design (Chiang, Russell &
Braatz 2000): 48 simulated hours sampled every 3 minutes (960 rows), the fault IDV(n) switched on at 8 h (row
160) and left on; one run per fault (measurement-noise seed 100 + n) and `--normal` fault-free runs (seeds
1, 2, ...) for false alarms. The literature reports IDV(3), IDV(9) and IDV(15) as practically undetectable
from the measurements (their effect is within the normal variation under control).

Channels: the 41 measurements XMEAS(1-41) and the 9 manipulated variables that move (XMV 5, 9 and 12 are
constant under this control), 50 in all: more than a request's 16, so each run goes as four requests, one per
unit of the plant (GROUPS), and a run's alarms are the union of its four requests' alarms, an alarm within JOIN
rows of the run's previous one joining it (the service's rule inside a request). The analysers (XMEAS 23-41)
are sample-and-hold, as in the plant: a new value every 6 or 15 minutes.

Found: a run alarm at or after the onset row; the delay is that alarm's row minus the onset (x 3 min); the
channels are those the alarm names. False alarms: every alarm of the fault-free runs, per 10k rows after the
warm-up (the 150 rows each channel needs before it is scored). The same "found" rule on the fault-free runs says
how often a fault run would be found by chance, and how soon; "within 20 rows" (1 h) is the stricter count.

Baseline (same runs, same 50 channels, label-free): Hotelling T^2 with the mean and covariance of `--training`
more fault-free runs (seeds 1001, ...: a plant's normal history, more than the detector's 150 rows of each run),
the limit the 99th percentile of its training rows' T^2; an alarm is a row above the limit from row 150, then
none for the served detector's refractory rows (100), as the service reports one alarm per event.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np

from app.families.anomaly import multivariate
from bench.service import ROOT, Service

SAMPLE_HOURS = 0.05  # 3 minutes, the classic data set's sampling
HOURS = 48.0
ONSET_HOURS = 8.0
ONSET = round(ONSET_HOURS / SAMPLE_HOURS)  # the first row after the fault is switched on
WARMUP = 150  # the served detector's (models/nearest_context/2/detector.json)
REFRACTORY = 100  # the served detector's: one alarm per event
SOON = 20  # rows (1 h): an alarm this soon after the onset is found "soon"
UNDETECTABLE = {3, 9, 15}  # in the literature (e.g. Chiang, Russell & Braatz 2000; Yin et al. 2012)
GROUPS = {  # one request each, at most 16 channels: XMEAS(n) as "m<n>", XMV(n) as "v<n>"
    "reactor": [f"m{n}" for n in (*range(1, 10), 21)] + [f"v{n}" for n in (1, 2, 3, 4, 10)],
    "separator, stripper, compressor": [f"m{n}" for n in (*range(10, 21), 22)] + [f"v{n}" for n in (6, 7, 8, 11)],
    "reactor feed and purge analysers": [f"m{n}" for n in range(23, 37)],
    "product analysers": [f"m{n}" for n in range(37, 42)],
}


@dataclass(frozen=True)
class Run:
    fault: int  # 0: fault-free
    seed: int
    values: np.ndarray  # rows x 53: XMEAS(1-41), XMV(1-12)
    shutdown_hours: float | None  # the plant tripped (a run shorter than 48 h)


def column(name: str) -> int:
    return int(name[1:]) - 1 + (41 if name[0] == "v" else 0)


CHANNELS = [column(n) for names in GROUPS.values() for n in names]


def simulate(fault: int, seed: int, hours: float = HOURS) -> Run:
    """`hours` of the closed loop, IDV(fault) on from ONSET_HOURS, one row every 3 minutes."""
    from tep_studio import ClosedLoopSimulation  # the optional [tep] extra

    def schedule(time: float) -> np.ndarray:
        idv = np.zeros(28)
        if fault and time >= ONSET_HOURS:
            idv[fault - 1] = 1.0
        return idv

    control_interval = 0.0005  # tep-studio's default and the model's design step: 100 steps a row
    result = ClosedLoopSimulation(control_interval=control_interval, horizon=hours).run(
        seed=seed, disturbance_schedule=schedule, record_every=round(SAMPLE_HOURS / control_interval)
    )
    values = np.array([np.r_[r.measurements, r.implemented_action] for r in result.results])
    return Run(fault, seed, values, result.final_time if result.terminated else None)


def cached(fault: int, seed: int, cache: Path | None) -> Run:
    if cache is None:
        return simulate(fault, seed)
    path = cache / f"idv{fault}_seed{seed}.npz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        run = simulate(fault, seed)
        np.savez(path, values=run.values, shutdown=np.nan if run.shutdown_hours is None else run.shutdown_hours)
    saved = np.load(path)
    shutdown = float(saved["shutdown"])
    return Run(fault, seed, saved["values"], None if np.isnan(shutdown) else shutdown)


@dataclass(frozen=True)
class Alarm:
    index: int
    channels: list[str]


def served_alarms(client: httpx.Client, values: np.ndarray, sensitivity: float) -> list[Alarm]:
    """One request per group; the run's alarms, the groups' joined as the service joins channels' (JOIN rows)."""
    hits = []
    for names in GROUPS.values():
        rows = values[:, [column(n) for n in names]].round(6).tolist()
        body = {"values": rows, "channels": names, "sensitivity": sensitivity}
        response = client.post("/predict/anomaly", json=body)
        response.raise_for_status()
        hits += [(a["index"], a["channels"]) for a in response.json()["alarms"]]
    alarms: list[Alarm] = []
    for index, channels in sorted(hits):
        if alarms and index - alarms[-1].index < multivariate.JOIN:
            alarms[-1].channels.extend(c for c in channels if c not in alarms[-1].channels)
        else:
            alarms.append(Alarm(index, list(channels)))
    return alarms


@dataclass(frozen=True)
class T2:
    """Hotelling T^2 of the GROUPS' channels with the mean and covariance of fault-free training rows, the limit
    their (1 - alpha) quantile."""

    mean: np.ndarray
    inverse: np.ndarray
    limit: float

    @staticmethod
    def statistic(values: np.ndarray, mean: np.ndarray, inverse: np.ndarray) -> np.ndarray:
        d = values[:, CHANNELS] - mean
        return np.einsum("ij,jk,ik->i", d, inverse, d)

    @classmethod
    def fit(cls, training: list[np.ndarray], alpha: float) -> T2:
        rows = np.concatenate([v[:, CHANNELS] for v in training])
        mean, inverse = rows.mean(axis=0), np.linalg.pinv(np.cov(rows, rowvar=False))
        t2 = np.concatenate([cls.statistic(v, mean, inverse) for v in training])
        return cls(mean, inverse, float(np.quantile(t2, 1 - alpha)))

    def alarms(self, values: np.ndarray) -> list[Alarm]:
        """A row above the limit, then none for REFRACTORY rows; from the row the detector scores first."""
        out: list[Alarm] = []
        for i in np.flatnonzero(self.statistic(values, self.mean, self.inverse) > self.limit):
            if i >= WARMUP and (not out or i - out[-1].index >= REFRACTORY):
                out.append(Alarm(int(i), []))
        return out


def first_after_onset(alarms: list[Alarm]) -> Alarm | None:
    return next((a for a in alarms if a.index >= ONSET), None)


def label(name: str) -> str:
    return f"{'XMV' if name[0] == 'v' else 'XMEAS'}({name[1:]})"


def delay_cell(alarm: Alarm | None) -> str:
    return "-" if alarm is None else f"{alarm.index - ONSET} ({3 * (alarm.index - ONSET)} min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", default="1-20", help="IDV numbers: a range 1-20 or a list 1,4,6")
    parser.add_argument("--normal", type=int, default=10, help="fault-free test runs (seeds 1..N)")
    parser.add_argument("--training", type=int, default=5, help="fault-free runs fitting T^2 (seeds 1001..)")
    parser.add_argument("--sensitivities", default="0.5,0.25,0", help="the served detector's, comma-separated")
    parser.add_argument("--alpha", type=float, default=0.01, help="T^2's limit: its training rows' 1 - alpha quantile")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--cache", type=Path, default=None, help="keep the simulated runs here (npz)")
    args = parser.parse_args()
    a, _, b = args.faults.partition("-")
    faults = list(range(int(a), int(b) + 1)) if b else [int(f) for f in args.faults.split(",")]
    sensitivities = [float(v) for v in args.sensitivities.split(",")]
    normal = [cached(0, seed, args.cache) for seed in range(1, args.normal + 1)]
    t2 = T2.fit([cached(0, 1000 + k, args.cache).values for k in range(1, args.training + 1)], args.alpha)
    runs = normal + [cached(fault, 100 + fault, args.cache) for fault in faults]
    detectors = [f"served, sensitivity {v:g}" for v in sensitivities] + [f"T^2, {1 - args.alpha:.2%} of training"]
    alarms: dict[tuple[int, int, str], list[Alarm]] = {}  # (fault, seed, detector)
    with Service(args.models) as service, httpx.Client(base_url=service.url, timeout=300) as client:
        for k, run in enumerate(runs):
            print(f"run {k + 1}/{len(runs)}: IDV({run.fault}), seed {run.seed}", file=sys.stderr)
            for name, sensitivity in zip(detectors, sensitivities, strict=False):
                alarms[run.fault, run.seed, name] = served_alarms(client, run.values, sensitivity)
            alarms[run.fault, run.seed, detectors[-1]] = t2.alarms(run.values)

    scored = sum(len(r.values) - WARMUP for r in normal)
    print(
        f"tep-studio {version('tep-studio')}: {HOURS:.0f} h runs at 3 min, IDV(n) on from {ONSET_HOURS:.0f} h ", end=""
    )
    print(f"(row {ONSET}); fault-free: {len(normal)} runs, {scored} rows after the warm-up; T^2 fitted on ", end="")
    print(f"{args.training} more fault-free runs")
    print(
        f"\n| detector | false alarms / 10k rows | fault-free runs alarming from row {ONSET}: any (median row - "
        f"{ONSET}), within {SOON} rows | faults found: any (median delay, rows), within {SOON} rows |"
    )
    print("|---|---|---|---|")
    for name in detectors:
        false = sum(len(alarms[0, r.seed, name]) for r in normal)
        cells = []
        for group in (normal, runs[len(normal) :]):
            firsts = [first_after_onset(alarms[r.fault, r.seed, name]) for r in group]
            delays = [a.index - ONSET for a in firsts if a is not None]
            median = f"{np.median(delays):g}" if delays else "-"
            soon = sum(d < SOON for d in delays)
            cells.append(f"{len(delays)}/{len(group)} ({median}), {soon}/{len(group)}")
        print(f"| {name} | {1e4 * false / scored:.1f} | {' | '.join(cells)} |")
    print(
        "\nDelay after the onset, rows (minutes), '-' when no alarm after it; channels named by the first alarm at "
        f"sensitivity {sensitivities[-1]:g}:"
    )
    print(f"| IDV | disturbance | {' | '.join(detectors)} | channels named |")
    print("|---|---|" + "---|" * (len(detectors) + 1))
    from tep_studio import list_disturbances  # the optional [tep] extra

    described = dict(list_disturbances())
    for run in runs[len(normal) :]:
        cells = [delay_cell(first_after_onset(alarms[run.fault, run.seed, name])) for name in detectors]
        first = first_after_onset(alarms[run.fault, run.seed, detectors[len(sensitivities) - 1]])
        named = [label(c) for c in first.channels] if first else []
        if len(named) > 5:
            named = [*named[:4], f"{len(named) - 4} more"]
        note = " (undetectable in the literature)" if run.fault in UNDETECTABLE else ""
        if run.shutdown_hours is not None:
            note += f" (plant shut down at {run.shutdown_hours:.1f} h)"
        text = described[f"idv_{run.fault:02d}"]
        print(f"| {run.fault} | {text}{note} | {' | '.join(cells)} | {', '.join(named)} |")


if __name__ == "__main__":
    main()
