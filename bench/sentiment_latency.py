"""Sentiment latency, one text per call: a short sentence and a 256-token review, in process and over HTTP.

    python -m bench.sentiment_latency [--model minilm] [--threads 2] [--requests 200]

In process: the runtime's `predict` (tokenising, the ONNX call, softmax) with `--threads` ONNX Runtime threads.
Over HTTP: POST /predict/sentiment from one client to uvicorn serving the committed models/ folder (only that
model configured, DEEPSERVE_INFERENCE_THREADS = --threads). Prints p50 and p95 in milliseconds; the issue's
targets for minilm are p50 <= 5 ms (short) and <= 30 ms (256 tokens) on this 2-core machine. In process it also
prints the CPU time per call (this process, all its threads): on a machine busy with other jobs the wall time
measures the queue for a core, the CPU time still measures the work (with --threads 1, the wall time it would
take alone).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import httpx

from app.config import Settings
from app.families import open_runtime
from app.manifest import read_manifest
from bench.service import ROOT, Service

SHORT = "Not bad at all, I enjoyed it."
LONG = (
    "I went in expecting very little from this film, since the trailer made it look like yet another tired "
    "remake, but I came out surprised. The first half hour is slow, and the dialogue between the two leads is "
    "often stiff, but once the story moves to the island the pacing improves and the photography is beautiful. "
    "The supporting cast does most of the work: the old fisherman in particular gives a warm, funny and quietly "
    "moving performance that carries several scenes on its own. The score is too loud in places and the villain "
    "is a cartoon. Still, the final act ties the threads together well, the twist is earned rather than cheap, "
    "and the closing scene on the pier stayed with me for days. It is not a masterpiece and it is at least twenty "
    "minutes too long, but it is sincere, well acted and often lovely to look at. I would recommend it to anyone "
    "who likes slow, character-driven dramas, and I will watch it again with my family at the weekend. "
) * 2


def quantiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[94] * 1000


def timed(call, requests: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each call."""
    for _ in range(5):  # warm-up
        call()
    wall, cpu = [], []
    for _ in range(requests):
        started, cpu_started = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--requests", type=int, default=200)
    args = p.parse_args(argv)

    settings = Settings(models_dir=args.models, inference_threads=args.threads)
    runtime = open_runtime(read_manifest(args.models).served()[args.model], settings)
    ids = runtime.tokenizer.encode(LONG).ids  # word pieces with [CLS] and [SEP]
    review = runtime.tokenizer.decode(ids[1:255])  # 254 word pieces + [CLS] and [SEP] = 256 tokens
    texts = {"short sentence": SHORT, "256-token review": review}
    rows = [
        (f"in process, {name}", timed(lambda t=text: runtime.predict([t]), args.requests))
        for name, text in texts.items()
    ]
    env = {"DEEPSERVE_MODELS": args.model, "DEEPSERVE_INFERENCE_THREADS": str(args.threads)}
    with Service(args.models, env) as service, httpx.Client(base_url=service.url, timeout=30) as client:
        for name, text in texts.items():
            body = {"text": text, "model": args.model}
            wall, _ = timed(lambda b=body: client.post("/predict/sentiment", json=b), args.requests)
            rows.append((f"HTTP, {name}", (wall, [])))  # the client's CPU time says nothing about the service

    print(
        f"\n{args.model} v{runtime.entry.version} ({runtime.entry.files['onnx']}), {args.threads} threads, "
        f"{args.requests} calls each"
    )
    print(f"{'':<34}{'p50 ms':>8}{'p95 ms':>8}{'CPU p50 ms':>12}")
    for name, (wall, cpu) in rows:
        p50, p95 = quantiles(wall)
        cpu_p50 = f"{quantiles(cpu)[0]:>12.1f}" if cpu else ""
        print(f"{name:<34}{p50:>8.1f}{p95:>8.1f}{cpu_p50}")


if __name__ == "__main__":
    main()
