"""Time to ready and memory of the whole service with every committed model (targets: ready <= 10 s, RSS <= 1.5 GB).

    python -m bench.service_memory [--models models] [--requests 200] [--workers 2]

Starts DeepServe as a user does (`deepserve serve`, 2 worker processes unless --workers says otherwise), times it
from the start to the first 200 of /health/ready, then sends `--requests` requests to every model's endpoint
(examples/ inputs, 8 at a time) and reports the RSS of the server's whole process tree: after ready, and after
that load.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.peers.run import REPO, deepserve, load_average, multipart, rss_mb, start, stop, tree_pids

EXAMPLES = REPO / "examples"


def calls() -> dict[str, tuple[str, str, bytes]]:
    """Model -> (path, content type, body) of one valid request."""
    digit = multipart((EXAMPLES / "digit.png").read_bytes(), "digit.png")
    boot = multipart((EXAMPLES / "ankle_boot.jpg").read_bytes(), "ankle_boot.jpg")
    series = json.loads((EXAMPLES / "series.json").read_text())
    text = b'{"text": "Not bad at all, I enjoyed it.", "model": "%s"}'
    return {
        "digit": ("/predict/digit", *digit),
        "fashion": ("/predict/image?model=fashion", *boot),
        "minilm": ("/predict/sentiment", "application/json", text % b"minilm"),
        "lstm": ("/predict/sentiment", "application/json", text % b"lstm"),
        "anomaly": ("/predict/anomaly", "application/json", json.dumps({**series, "method": "autoencoder"}).encode()),
    }


def post(port: int, path: str, content_type: str, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.status


def every_worker_ready(port: int, in_a_row: int = 10, timeout: float = 120.0) -> float:
    """Seconds until /health/ready answers 200 `in_a_row` times running, each on a new connection (urllib opens one
    per request): then every worker process is ready, not only the first to answer."""
    started = time.perf_counter()
    ok = 0
    while ok < in_a_row and time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2):
                ok += 1
        except OSError:  # HTTPError (503: a worker still loading) is an OSError too
            ok = 0
            time.sleep(0.02)
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=REPO / "models")
    p.add_argument("--requests", type=int, default=200, help="per model")
    p.add_argument("--port", type=int, default=18433)
    p.add_argument("--workers", type=int, default=2, help="`deepserve serve --workers` (its default: 2)")
    args = p.parse_args()
    print(f"load average at start {load_average()}")
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        process, ready = start(
            deepserve("DeepServe", args.port, args.models.resolve(), workers=args.workers),
            args.port,
            120,
            Path(tmp) / "log",
        )
        try:
            every = ready + every_worker_ready(args.port)
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/health/ready") as r:
                models = json.loads(r.read())["models"]
            at_ready = rss_mb(tree_pids(process.pid))
            timings = {}
            with ThreadPoolExecutor(8) as pool:
                for name, call in calls().items():
                    if models.get(name) != "ready":
                        print(f"{name}: {models.get(name, 'not served')}, skipped")
                        continue
                    started = time.perf_counter()
                    statuses = list(pool.map(lambda _, c=call: post(args.port, *c), range(args.requests)))
                    timings[name] = (time.perf_counter() - started, statuses.count(200))
            pids = tree_pids(process.pid)
            after = rss_mb(pids)
        finally:
            stop(process)
    print(f"models: {', '.join(f'{k} {v}' for k, v in models.items())}")
    print(f"{args.workers} worker(s); ready: first {ready:.1f} s, every worker {every:.1f} s (target <= 10 s)")
    print(f"RSS of the process tree ({len(pids)} processes): {at_ready:.0f} MB at ready, {after:.0f} MB after load")
    print("(target <= 1,536 MB)")
    for name, (seconds, ok) in timings.items():
        print(
            f"  {name}: {args.requests} requests, {ok} answered 200, {args.requests / seconds:.0f} req/s at 8 clients"
        )


if __name__ == "__main__":
    main()
