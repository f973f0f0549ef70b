"""Micro-batching on a sentiment model: throughput and latency at 32 concurrent clients, batching off vs on.

    python -m bench.sentiment_batching [--size base|small] [--clients 32] [--requests 256]
    python -m bench.sentiment_batching --model minilm   # the committed MiniLM artifact (models/minilm)
    python -m bench.sentiment_batching --model lstm     # the committed LSTM artifact (models/lstm)

`--model distilbert` builds a random-weight DistilBERT of the chosen shape (`base` = DistilBERT's real shape, 66M
parameters; speed does not depend on the weights) with training/train_transformer.py --tiny into a temporary
folder; `minilm` and `lstm` serve the committed models/ folder (only that model configured). Each is served twice
with uvicorn (DEEPSERVE_BATCH_MODELS empty, then the model) and gets `--requests` POST /predict/sentiment requests
(one short review each) from `--clients` concurrent clients. Both runs happen in the same invocation on the same
machine; the ratio is against batching off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
REVIEWS = [
    "This movie was absolutely wonderful, I loved every minute of it.",
    "A dull, lifeless film. I want my two hours back.",
    "The acting was fine but the plot made no sense at all, and the ending was rushed.",
    "One of the best performances I have seen in years!",
    "Terrible. Just terrible.",
    "It was okay, nothing special, but not bad either. The kids liked it more than I did.",
    "I didn't expect much, and I was pleasantly surprised by how funny and warm it turned out to be.",
    "The soundtrack is great; the rest is forgettable.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models_dir: Path, batching: bool, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "DEEPSERVE_MODELS_DIR": str(models_dir),
        "DEEPSERVE_MODELS": args.model,
        "DEEPSERVE_BATCH_MODELS": args.model if batching else "",
        "DEEPSERVE_MAX_BATCH_SIZE": str(args.max_batch_size),
        "DEEPSERVE_MAX_BATCH_WAIT_MS": str(args.max_batch_wait_ms),
        "DEEPSERVE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.http.main:create_app", "--port", str(port)]
    server = subprocess.Popen([*command, "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("uvicorn did not become ready")


async def load(url: str, model: str, clients: int, requests: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one_client() -> None:
            for i in counter:
                body = {"text": REVIEWS[i % len(REVIEWS)], "model": model}
                started = time.perf_counter()
                r = await client.post("/predict/sentiment", json=body)
                latencies.append(time.perf_counter() - started)
                r.raise_for_status()

        await asyncio.gather(*(one_client() for _ in range(clients)))  # warm-up: connections, threads, arenas
        latencies.clear()
        counter = iter(range(requests))
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return time.perf_counter() - started, latencies


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["minilm", "distilbert", "lstm"], default="minilm")
    p.add_argument("--size", choices=["small", "base"], default="base", help="DistilBERT's shape")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=256)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if args.model == "distilbert":
            from training import train_transformer

            print(f"building a random-weight DistilBERT ({args.size}) in {out} ...", flush=True)
            train_transformer.main(["--tiny", "--tiny-size", args.size, "--out", str(out)])
            label = f"DistilBERT ({args.size}, ONNX int8)"
        else:
            out, label = ROOT / "models", f"{args.model} (models/)"
        rows = []
        for batching in (False, True):
            server, url = start_server(out, batching, args)
            try:
                seconds, latencies = asyncio.run(load(url, args.model, args.clients, args.requests))
            finally:
                server.terminate()
                server.wait(timeout=20)
            q = statistics.quantiles(latencies, n=100)
            rows.append(("on" if batching else "off", len(latencies) / seconds, q[49] * 1000, q[94] * 1000))

    base = rows[0][1]
    print(
        f"\n{label}, {args.clients} concurrent clients, {args.requests} requests, "
        f"max_batch_size {args.max_batch_size}, max_batch_wait {args.max_batch_wait_ms} ms, {os.cpu_count()} CPUs"
    )
    print(f"{'batching':<10}{'requests/s':>12}{'p50 ms':>10}{'p95 ms':>10}{'vs off':>9}")
    for name, rps, p50, p95 in rows:
        print(f"{name:<10}{rps:>12.1f}{p50:>10.1f}{p95:>10.1f}{rps / base:>8.2f}x")


if __name__ == "__main__":
    main()
