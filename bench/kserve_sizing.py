"""What deploy/kserve's resources and autoscaling target are sized from: the service's RSS when ready and under
load, and digit throughput over the Open Inference Protocol at rising concurrency, in a pod-like setup: the
server pinned to one CPU (every thread of it, as a 1-CPU container's quota would hold it), one ONNX Runtime thread
per model; the client runs on the other CPUs.

    python -m bench.kserve_sizing [--models models] [--requests 300] [--cpu 0]

The autoscaling target is the lowest concurrency whose throughput is within 10% of the best measured: beyond it,
requests only queue (latency grows, throughput does not), so another replica should take them.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.service import ROOT, RssSampler, Service

CONCURRENCY = [1, 2, 4, 8, 16]


def infer_body(png: bytes) -> dict:
    data = [base64.b64encode(png).decode()]
    image = {"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"content_type": "base64"}, "data": data}
    return {"inputs": [image], "outputs": [{"name": "digit"}]}


def run(url: str, body: dict, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Requests per second and each request's latency (s); every answer must be 200."""
    with httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        def one(_: int) -> float:
            started = time.perf_counter()
            response = client.post("/v2/models/digit/infer", json=body)
            response.raise_for_status()
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(one, range(requests)))
        return requests / (time.perf_counter() - started), latencies


def pin(pid: int, cpu: int) -> None:
    """Every thread of process `pid` onto CPU `cpu` (threads started later inherit it from their creator)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})
    others = os.sched_getaffinity(0) - {cpu}
    if others:
        os.sched_setaffinity(0, others)  # this process (the client) keeps off it


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--cpu", type=int, default=0, help="the one CPU the server runs on")
    args = p.parse_args()
    body = infer_body((ROOT / "examples" / "digit.png").read_bytes())
    with Service(args.models, env={"DEEPSERVE_INFERENCE_THREADS": "1"}) as service:
        pin(service.pid, args.cpu)
        ready = service.rss_mb()
        print(f"RSS when ready: {ready:.0f} MB ({', '.join(sorted(service.models()))})")
        run(service.url, body, 20, 2)  # warm up the connection pool and the first calls
        rows = []
        with RssSampler(service.pid) as sampler:
            for concurrency in CONCURRENCY:
                sampler.reset()
                throughput, latencies = run(service.url, body, args.requests, concurrency)
                q = statistics.quantiles(latencies, n=100)
                rows.append((concurrency, throughput, q[49] * 1000, q[98] * 1000, sampler.peak()))
        print("| concurrency | requests/s | p50 ms | p99 ms | peak RSS MB |\n|---|---|---|---|---|")
        for concurrency, throughput, p50, p99, peak in rows:
            print(f"| {concurrency} | {throughput:.1f} | {p50:.0f} | {p99:.0f} | {peak:.0f} |")
        best = max(row[1] for row in rows)
        target = next(row[0] for row in rows if row[1] >= 0.9 * best)
        print(f"autoscaling target (lowest concurrency within 10% of the best throughput): {target}")
        print(f"RSS after: {service.rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
