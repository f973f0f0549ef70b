"""Every NAB series through the running service, scored by NAB's rules (bench/nab_scorer.py).

Starts uvicorn on the committed models with a scratch data folder, feeds each of the 58 series to a stream
(`POST /anomaly/streams/{id}/points`, `--chunk` points per request: causal, state kept between requests) with
its timestamps as NAB has them (local times: 7 series repeat a timestamp where the clocks go back, accepted and
reported; machine_temperature_system_failure steps back 55 minutes, which the service refuses with 422, so that
request goes again without its timestamps, as a user would send it, and the run says so) and scores the
`is_anomaly` answers on the three profiles, per category, beside the null and windowedGaussian
detectors' published outputs scored by the same scorer (and the published numenta HTM row).

    python -m bench.nab                      # the default sensitivity, 0.5
    python -m bench.nab --sensitivity 0.375  # one point of the sensitivity curve
    python -m bench.nab --no-timestamps      # the values alone
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.nab_scorer import (
    NAB_ROOT,
    PROFILE_NAMES,
    corpus_scores,
    load_profiles,
    load_windows,
    published_detections,
    read_series,
    window_rows,
)
from bench.service import ROOT, Service

BASELINES = ("null", "windowedGaussian", "numenta")


def stream_series(client: httpx.Client, name: str, timestamps: np.ndarray, values: np.ndarray, args) -> np.ndarray:
    """The service's is_anomaly for every point of one series, sent `args.chunk` points at a time, with NAB's
    timestamps unless `args.no_timestamps` (a request refused for its timestamps goes again without them)."""
    series_id = name.replace("/", ".").removesuffix(".csv")
    flags: list[bool] = []
    for start in range(0, len(values), args.chunk):
        part = slice(start, start + args.chunk)
        body = {"values": values[part].tolist(), "sensitivity": args.sensitivity}
        if not args.no_timestamps:
            body["timestamps"] = [str(t) for t in timestamps[part]]
        response = client.post(f"/anomaly/streams/{series_id}/points", json=body)
        if response.status_code == 422 and "timestamps" in body:
            print(f"{name}: {response.json()['error']['message']} Sent again without timestamps.")
            del body["timestamps"]
            response = client.post(f"/anomaly/streams/{series_id}/points", json=body)
        response.raise_for_status()
        sampling = response.json().get("sampling") or {}
        if sampling.get("duplicate_count"):
            print(f"{name}: {sampling['duplicate_count']} repeated timestamps, e.g. {sampling['duplicates'][0]}")
        flags += response.json()["is_anomaly"]
    client.delete(f"/anomaly/streams/{series_id}")
    return np.array(flags, dtype=bool)


def print_table(rows: dict[str, dict[str, dict[str, float]]]) -> None:
    categories = sorted(next(iter(rows.values()))["standard"])
    for profile in PROFILE_NAMES:
        print(f"\n{profile}")
        print(f"{'detector':18}" + "".join(f"{c.removeprefix('real'):>22}" for c in categories))
        for detector, scores in rows.items():
            cells = "".join(
                f"{'n/a' if np.isnan(scores[profile][c]) else f'{scores[profile][c]:.1f}':>22}" for c in categories
            )
            print(f"{detector:18}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=NAB_ROOT, help="NAB root (data/, labels/, published/)")
    parser.add_argument("--sensitivity", type=float, default=0.5)
    parser.add_argument("--chunk", type=int, default=5000, help="points per stream request")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--no-timestamps", action="store_true", help="send the values without their timestamps")
    parser.add_argument("--show", default="realKnownCause/nyc_taxi.csv", help="a series whose windows are printed")
    parser.add_argument("--save", type=Path, help="write every series' alarm rows here (JSON)")
    args = parser.parse_args()

    limits = load_windows(args.nab)
    corpus = {}
    for path in sorted((args.nab / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        timestamps, values = read_series(path)
        corpus[name] = (timestamps.astype("datetime64[s]"), values, window_rows(timestamps, limits[name]))
    windows = {name: w for name, (_, _, w) in corpus.items()}
    profiles = load_profiles(args.nab)

    ours: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as data, Service(args.models, {"DEEPSERVE_DATA_DIR": data}) as service:
        started = time.perf_counter()
        with httpx.Client(base_url=service.url, timeout=600) as client:
            for name, (timestamps, values, _) in corpus.items():
                ours[name] = stream_series(client, name, timestamps, values, args)
        seconds = time.perf_counter() - started
    points = sum(len(v) for _, v, _ in corpus.values())
    alarms = sum(int(f.sum()) for f in ours.values())
    print(f"{len(corpus)} series, {points:,} points through HTTP in {seconds:.0f} s ({points / seconds:,.0f} points/s)")
    quiet = sum(int(f.sum()) for name, f in ours.items() if not windows[name])
    sent = "without timestamps" if args.no_timestamps else "with NAB's timestamps"
    print(f"sensitivity {args.sensitivity}, {sent}: {alarms} alarms, {quiet} on the series without labelled windows")

    if args.show in ours:
        flags, shown = ours[args.show], windows[args.show]
        inside = np.zeros(len(flags), dtype=bool)
        for left, right in shown:
            inside[left : right + 1] = True
        found = sum(bool(flags[left : right + 1].any()) for left, right in shown)
        outside = int((flags & ~inside).sum())
        print(f"{args.show}: {found}/{len(shown)} windows found, {outside} alarms (false-alarm regions) outside them")
    if args.save:
        args.save.write_text(json.dumps({name: np.flatnonzero(f).tolist() for name, f in ours.items()}))
    rows = {f"deepserve {args.sensitivity}": corpus_scores(ours, windows, profiles)}
    for detector in BASELINES:
        rows[detector] = {}
        for profile in PROFILE_NAMES:
            detections = published_detections(detector, profile, args.nab)
            rows[detector][profile] = corpus_scores(detections, windows, {profile: profiles[profile]})[profile]
    print_table(rows)
    board = json.loads((args.nab / "published" / "final_results.json").read_text())
    print("\nscoreboard (final_results.json, all series):")
    for detector in ("numenta", "windowedGaussian", "null"):
        print(f"  {detector:18}" + "  ".join(f"{p} {board[detector][p]:.1f}" for p in PROFILE_NAMES))


if __name__ == "__main__":
    main()
