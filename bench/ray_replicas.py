"""DeepServe on Ray Serve across a local two-node cluster (app/http/ray_serve.py): 1 vs 2 replicas' digit throughput,
how requests spread over the replicas, and what killing a replica mid-stream costs, in one run.

    python -m bench.ray_replicas [--models models] [--requests 300] [--concurrency 8]   # `make ray-bench`

Failover: a stream of digit requests from `--concurrency` clients; after a few seconds one replica's process
is killed (SIGKILL, its pid from the X-DeepServe-Replica header). Counted: requests that failed, requests in
flight (on either replica) at the kill, and how long until the engine had a new replica answering.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.http.ray_serve import REPLICA_HEADER, LocalCluster, local_cluster, settings_env

ROOT = Path(__file__).resolve().parents[1]
PNG = (ROOT / "examples" / "digit.png").read_bytes()
HEADERS = {"content-type": "image/png"}


def post_digit(client: httpx.Client) -> httpx.Response:
    return client.post("/predict/digit", content=PNG, headers=HEADERS)


def throughput(url: str, requests: int, concurrency: int) -> float:
    """Digit requests per second at `concurrency` clients (every answer must be 200)."""
    with httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        for _ in range(concurrency):
            post_digit(client).raise_for_status()  # warm the connections
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for response in pool.map(lambda _: post_digit(client), range(requests)):
                response.raise_for_status()
        return requests / (time.perf_counter() - started)


def spread(url: str, requests: int = 40, concurrency: int = 4) -> Counter[str]:
    """How many of `requests` digit requests each replica answered."""
    with httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(concurrency) as pool:
        return Counter(r.headers[REPLICA_HEADER] for r in pool.map(lambda _: post_digit(client), range(requests)))


@dataclass
class Failover:
    killed: str = ""
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # status or exception of each failed request
    in_flight_at_kill: int = 0
    recovered_after_s: float | None = None  # kill -> a new replica answered (during the stream, or after it)
    replacement: str = ""
    after_recovery_failed: int = 0  # failures among requests started after the replacement answered

    def report(self) -> str:
        causes = dict(Counter(self.failed))
        return (
            f"killed replica {self.killed}: {self.sent} requests sent, {len(self.failed)} failed {causes}, "
            f"{self.in_flight_at_kill} in flight at the kill; a new replica ({self.replacement}) answered "
            f"{self.recovered_after_s} s after the kill; {self.after_recovery_failed} failed after that"
        )


def failover(url: str, replicas: set[str], seconds: float = 20, concurrency: int = 4, kill_at: float = 5) -> Failover:
    """Stream digit requests for `seconds`; kill one replica's process `kill_at` seconds in."""
    result, lock = Failover(killed=sorted(replicas)[0]), threading.Lock()
    in_flight, events = [0], []  # events: (started, ended, ok, replica or failure)
    deadline, killed_at = time.monotonic() + seconds, [float("inf")]

    def stream() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.monotonic() < deadline:
                with lock:
                    in_flight[0] += 1
                started = time.monotonic()
                try:
                    response = post_digit(client)
                    ok = response.status_code == 200
                    what = response.headers[REPLICA_HEADER] if ok else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, what = False, type(exc).__name__
                with lock:
                    in_flight[0] -= 1
                    events.append((started, time.monotonic(), ok, what))

    threads = [threading.Thread(target=stream) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(kill_at)
    with lock:
        result.in_flight_at_kill = in_flight[0]
        killed_at[0] = time.monotonic()
        os.kill(int(result.killed.split("/")[1]), signal.SIGKILL)  # a Ray worker process this run started
    for thread in threads:
        thread.join()
    result.sent = len(events)
    result.failed = [what for _, _, ok, what in events if not ok]
    new = sorted((end, what) for _, end, ok, what in events if ok and end > killed_at[0] and what not in replicas)
    if not new:  # not back within the stream: keep asking until it is
        new = [replacement(url, replicas, timeout=120)]
    result.recovered_after_s = round(new[0][0] - killed_at[0], 1)
    result.replacement = new[0][1]
    result.after_recovery_failed = sum(1 for start, _, ok, _ in events if start > new[0][0] and not ok)
    return result


def replacement(url: str, replicas: set[str], timeout: float) -> tuple[float, str]:
    """When (monotonic) a replica not in `replicas` first answered /health/ready with 200, and its name."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get("/health/ready")
                name = response.headers.get(REPLICA_HEADER, "")
                if response.status_code == 200 and name and name not in replicas:
                    return time.monotonic(), name
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"no new replica answered within {timeout:.0f} s")


def run_all(cluster: LocalCluster, models: Path, requests: int, concurrency: int) -> dict:
    env = settings_env(models)
    cluster.run(1, env)
    one = throughput(cluster.url, requests, concurrency)
    replicas = cluster.run(2, env)
    two = throughput(cluster.url, requests, concurrency)
    shares = spread(cluster.url)
    result = failover(cluster.url, replicas, concurrency=concurrency // 2 or 1)
    return {"throughput": (one, two), "spread": shares, "failover": result}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    started = time.monotonic()
    with local_cluster() as cluster:
        print(f"2-node Ray cluster on loopback up in {time.monotonic() - started:.0f} s", flush=True)
        out = run_all(cluster, args.models, args.requests, args.concurrency)
    one, two = out["throughput"]
    print(
        f"digit, {args.requests} requests at concurrency {args.concurrency}: 1 replica {one:.1f} req/s, "
        f"2 replicas {two:.1f} req/s ({two / one:.2f}x)"
    )
    print(f"spread of 40 requests over the 2 replicas: {dict(out['spread'])}")
    print(out["failover"].report())
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
