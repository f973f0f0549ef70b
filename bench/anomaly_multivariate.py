"""Several channels through the served detector (app/families/anomaly/multivariate.py): events found per kind and
false alarms per 10k rows, on a synthetic corpus and on NAB's series that share their timestamps.

    nice -n 10 python -m bench.anomaly_multivariate --seed 0 --series 30 [--nab ../shared/data/nab]

No public labelled multivariate set is reachable here (SKAB, SMD, SWaT are not on PyPI, apt or npm), so the corpus
is synthetic (`corpus`): each series has 3-8 channels driven by one or two shared loads (a daily cycle and a slow
wander, each channel with its own gain, sign, offset and noise), and three events, one of each kind, 250+ rows
apart after the warm-up:

* one: a single channel spikes (1-5 rows) or shifts level (30 rows);
* several: two or three channels do so at once;
* correlation: one channel follows its own usual shape 30-60 rows late for 100-200 rows (from where it was, no
  jump): each channel alone looks as usual, only its relation to the others breaks.

An event is found when the series alarms in [start, end + SLACK]; a found event is named right when the alarm's
channels are among the event's. Every other alarm is a false one (per 10k rows of all series). Each series is
scored twice: the full rule, and its channels alone (no departures: the full rule's channels, with their limits
widened for their number, their alarms joined as the full rule joins them).

NAB (`--nab`): its series with the same timestamps that come from one system are sent as the channels of one
series (exchange-2/3/4 cpc and cpm; ec2_cpu_utilization_825cc2 + ec2_network_in_257a54 + elb_request_count_8c0756;
ec2_cpu_utilization_77c1ca + ec2_disk_write_bytes_c0d644), with the union of their channels' windows
(labels/combined_windows.json) as the events: found = an alarm inside a window, false = an alarm outside all. The
rows are the union of the channels' timestamps, a channel's value null (missing) at a timestamp it lacks (the
825cc2 group's files differ by a few points; a repeated timestamp keeps its last value).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.families.anomaly import multivariate
from app.families.anomaly.detector import DetectorConfig

SERVED = Path(__file__).resolve().parents[1] / "models" / "nearest_context" / "2" / "detector.json"
NAB_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
KINDS = ("one", "several", "correlation")
SLACK = 30  # rows after an event's end in which an alarm still finds it
NAB_GROUPS = {
    "exchange-2": ["realAdExchange/exchange-2_cpc_results.csv", "realAdExchange/exchange-2_cpm_results.csv"],
    "exchange-3": ["realAdExchange/exchange-3_cpc_results.csv", "realAdExchange/exchange-3_cpm_results.csv"],
    "exchange-4": ["realAdExchange/exchange-4_cpc_results.csv", "realAdExchange/exchange-4_cpm_results.csv"],
    "aws-825cc2": [
        "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
        "realAWSCloudwatch/ec2_network_in_257a54.csv",
        "realAWSCloudwatch/elb_request_count_8c0756.csv",
    ],
    "aws-77c1ca": [
        "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv",
        "realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv",
    ],
}


@dataclass(frozen=True)
class Event:
    kind: str
    start: int
    end: int  # last row, inclusive
    channels: tuple[int, ...]


@dataclass(frozen=True)
class Series:
    values: np.ndarray  # rows x channels
    events: list[Event]


def _load(rng: np.random.Generator, n: int) -> np.ndarray:
    """A daily cycle (period 96 or 144 rows) with a slow wander, about unit amplitude."""
    period = int(rng.choice([96, 144]))
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(n)
    wander = np.convolve(rng.normal(0, 1, n + 200), np.ones(200) / 200, mode="valid")[:n] * 8
    return np.sin(2 * np.pi * t / period + phase) + 0.3 * np.sin(4 * np.pi * t / period) + 0.3 * wander


def make_series(rng: np.random.Generator, rows: int = 2000, warmup: int = 150, events: bool = True) -> Series:
    """A series of the corpus; `events=False`: the same kind of series, fault-free."""
    k = int(rng.integers(3, 9))
    loads = [_load(rng, rows) for _ in range(2)]
    mix = rng.uniform(0.6, 1.0, k)  # each channel mostly follows the first load
    gains = rng.uniform(0.5, 50, k) * rng.choice([1, 1, 1, -1], k)
    offsets = rng.uniform(0, 100, k)
    noise = rng.uniform(0.05, 0.15, k)
    shape = mix * loads[0][:, None] + (1 - mix) * loads[1][:, None]
    x = shape + rng.normal(0, 1, (rows, k)) * noise
    if not events:
        return Series(x * gains + offsets, [])
    injected = []
    starts = warmup + 100 + np.arange(3) * 500 + rng.integers(0, 200, 3)
    for kind, start in zip(rng.permutation(KINDS), starts, strict=True):
        start = int(start)
        if kind == "correlation":
            c = int(rng.integers(k))
            length = int(rng.integers(100, 201))
            lag = int(rng.integers(30, 60))  # the channel's own shape, late: a replica that fell behind the others
            span = slice(start, start + length)
            late = shape[start - lag : start + length - lag, c]
            x[span, c] = late + (shape[start, c] - late[0]) + rng.normal(0, 1, length) * noise[c]
            injected.append(Event(kind, start, start + length - 1, (c,)))
            continue
        channels = rng.choice(k, 1 if kind == "one" else int(rng.integers(2, 4)), replace=False)
        length = int(rng.choice([1, 3, 5, 30]))
        size = rng.uniform(0.8, 1.5) * rng.choice([-1, 1])  # in units of the load's amplitude
        x[start : start + length, channels] += size
        injected.append(Event(str(kind), start, start + length - 1, tuple(int(c) for c in sorted(channels))))
    return Series(x * gains + offsets, injected)


def corpus(seed: int, count: int) -> list[Series]:
    rng = np.random.default_rng(seed)
    return [make_series(rng) for _ in range(count)]


def run(values: np.ndarray, config: DetectorConfig, shifts: tuple[float, ...]) -> list[multivariate.Combined]:
    """The channels alone (no departures), then the full rule at each departure shift, on one series."""
    names = [str(c) for c in range(values.shape[1])]
    out = [multivariate.score(values, names, config=config, shift=shift) for shift in shifts]
    return [multivariate.combine(names, out[0].channels, {}, {}), *out]


@dataclass
class Tally:
    found: dict[str, int]
    named: dict[str, int]
    events: dict[str, int]
    false: int = 0
    rows: int = 0

    @classmethod
    def empty(cls) -> Tally:
        return cls(dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0))

    def add(self, combined: multivariate.Combined, events: list[Event], rows: int) -> None:
        used = set()
        for event in events:
            self.events[event.kind] += 1
            hits = [a for a in combined.alarms if event.start <= a.index <= event.end + SLACK]
            if hits:
                self.found[event.kind] += 1
                named = {int(c) for c in hits[0].scores}
                self.named[event.kind] += named <= set(event.channels)
                used.update(a.index for a in hits)
        self.false += sum(a.index not in used for a in combined.alarms)
        self.rows += rows


def synthetic(args: argparse.Namespace, config: DetectorConfig) -> None:
    items = corpus(args.seed, args.series)
    tallies = {"channels alone": Tally.empty()} | {f"full rule, shift {shift}": Tally.empty() for shift in args.shifts}
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run, [s.values for s in items], [config] * len(items), [args.shifts] * len(items)))
    for s, combined in zip(items, results, strict=True):
        for tally, c in zip(tallies.values(), combined, strict=True):
            tally.add(c, s.events, len(s.values))
    channels = sum(s.values.shape[1] for s in items)
    rows = sum(len(s.values) for s in items)
    print(f"Synthetic corpus, seed {args.seed}: {len(items)} series, {rows} rows, {channels} channels in all")
    print("| rule | one: found (named right) | several: found (named right) | correlation: found | false / 10k rows |")
    print("|---|---|---|---|---|")
    for name, t in tallies.items():
        cells = [f"{t.found[k]}/{t.events[k]} ({t.named[k]})" for k in ("one", "several")]
        cells.append(f"{t.found['correlation']}/{t.events['correlation']}")
        print(f"| {name} | {' | '.join(cells)} | {1e4 * t.false / max(t.rows, 1):.1f} |")


def nab(root: Path, config: DetectorConfig, shift: float) -> None:
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    print(f"\nNAB series sharing timestamps, sent as channels of one series ({root})")
    print("| series | channels | rows | windows | full rule: found, false | channels alone: found, false |")
    print("|---|---|---|---|---|---|")
    totals = np.zeros(6, dtype=int)  # found, false (full rule), found, false (alone), windows, rows
    for name, files in NAB_GROUPS.items():
        columns = [np.genfromtxt(root / "data" / f, delimiter=",", skip_header=1, dtype=str) for f in files]
        stamps = np.unique(np.concatenate([c[:, 0] for c in columns]))  # every channel's rows, null where it has none
        values = np.full((len(stamps), len(files)), np.nan)
        for k, c in enumerate(columns):
            values[np.searchsorted(stamps, c[:, 0]), k] = c[:, 1].astype(float)
        spans: list[tuple[int, int]] = []  # the union of the channels' windows, as row spans
        for a, b in sorted(
            (np.searchsorted(stamps, a[:19]), np.searchsorted(stamps, b[:19])) for f in files for a, b in windows[f]
        ):
            if spans and a <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], int(b)))
            else:
                spans.append((int(a), int(b)))
        alone, full = run(values, config, (shift,))
        cells = []
        for combined in (full, alone):
            inside = [any(a <= x.index <= b for a, b in spans) for x in combined.alarms]
            found = sum(any(a <= x.index <= b for x in combined.alarms) for a, b in spans)
            cells.append(f"{found}/{len(spans)}, {len(inside) - sum(inside)}")
            totals[len(cells) * 2 - 2 : len(cells) * 2] += (found, len(inside) - sum(inside))
        totals[4:] += (len(spans), len(values))
        gaps = int(np.isnan(values).sum())
        print(f"| {name} | {len(files)} | {len(values)} ({gaps} null) | {len(spans)} | {cells[0]} | {cells[1]} |")
    per_10k = [f"{1e4 * false / max(totals[5], 1):.1f}" for false in totals[[1, 3]]]
    print(
        f"| all | | {totals[5]} | {totals[4]} | {totals[0]}, {totals[1]} ({per_10k[0]} / 10k rows) | "
        f"{totals[2]}, {totals[3]} ({per_10k[1]} / 10k rows) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--series", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--shifts",
        type=lambda text: tuple(float(v) for v in text.split(",")),
        default=(multivariate.DEPARTURE_SHIFT,),
        help="departure shifts to compare (comma-separated; NAB uses the first)",
    )
    parser.add_argument("--nab", type=Path, default=None, help="NAB root (data/, labels/): also its shared series")
    args = parser.parse_args()
    config = DetectorConfig(**json.loads(SERVED.read_text()))
    synthetic(args, config)
    if args.nab is not None:
        nab(args.nab, config, args.shifts[0])


if __name__ == "__main__":
    main()
