"""Latency of one streamed point: `POST /anomaly/streams/{id}/points` with a single value, through uvicorn.

A stream is first fed `--history` points (past its warm-up, with the detector's history full), then `--points`
single-point requests are timed one after another; prints p50 / p90 / p99 in milliseconds. Target: p50 < 10 ms.

    python -m bench.anomaly_stream_latency
"""

from __future__ import annotations

import argparse
import tempfile
import time

import httpx
import numpy as np

from bench.service import ROOT, Service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=4000, help="points fed before timing")
    parser.add_argument("--points", type=int, default=500, help="single-point requests timed")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.history + args.points
    day = np.arange(n) / 288
    values = 100 + 30 * np.sin(2 * np.pi * day) + rng.normal(0, 2, n)
    with tempfile.TemporaryDirectory() as data, Service(ROOT / "models", {"DEEPSERVE_DATA_DIR": data}) as service:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            url = "/anomaly/streams/latency/points"
            client.post(url, json={"values": values[: args.history].tolist()}).raise_for_status()
            seconds = []
            for value in values[args.history :]:
                started = time.perf_counter()
                response = client.post(url, json={"values": [float(value)]})
                seconds.append(time.perf_counter() - started)
                response.raise_for_status()
    ms = np.array(seconds) * 1000
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    print(f"one streamed point, {args.points} requests after {args.history} points of history:")
    print(f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
