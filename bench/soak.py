"""Soak: minutes of mixed valid traffic at a fixed concurrency; errors, latency per endpoint and RSS growth.

    python -m bench.soak --minutes 10 --concurrency 8          # starts the service on models/ itself
    python -m bench.soak --url http://127.0.0.1:8000 --pid 1234 # or an already running one (RSS needs --pid)

Not part of CI. `--concurrency` clients each send one request after another, cycling through a seeded mix:
digit images in every format tests/digit_images.py draws (28x28 PNGs to 1600x1200 canvases, JPEG photos,
16-bit PNG, GIF, TIFF; multipart and raw bodies), sentiment requests (1-8 texts of 10-400 words, the LSTM) and
anomaly series (336-3,000 points, with or without timestamps). It runs for `--minutes` or `--max-requests`,
whichever ends first. The first `--warmup` minutes (default: a fifth of the run, at most one) are traffic too,
but RSS growth is measured from their end, when allocator pools and caches have filled, to the end of the run.

Prints requests, errors by status (any status but 200 is an error here), p50/p99 per endpoint, RSS at the end of
the warm-up and at the end, growth %, the highest RSS, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from bench.service import ROOT, RssSampler, Service, review, rss_mb, series
from tests.support.digit_images import KINDS, render

MAGIC = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"II*\x00": "image/tiff"}


def media_type(data: bytes) -> str:
    return next((media for magic, media in MAGIC.items() if data.startswith(magic)), "application/octet-stream")


def requests_mix(seed: int) -> list[tuple[str, dict]]:
    """A fixed list of valid requests, (endpoint, httpx keyword arguments), shuffled."""
    rng = random.Random(seed)
    mix: list[tuple[str, dict]] = []
    for kind in KINDS:
        for digit in range(10):
            data = render(digit, kind, seed=digit)
            media = media_type(data)
            if digit % 2:
                mix.append(("/predict/digit", {"files": {"file": (f"{kind}.img", data, media)}}))
            else:
                mix.append(("/predict/digit", {"content": data, "headers": {"content-type": media}}))
    start = datetime(2014, 7, 1)
    for i in range(60):
        texts = [review(rng.randint(10, 400), rng) for _ in range(rng.choice([1, 1, 2, 4, 8]))]
        body = {"text": texts[0]} if len(texts) == 1 else {"texts": texts}
        mix.append(("/predict/sentiment", {"json": {**body, "model": "lstm"}}))
        values = series(rng.randint(336, 3000), rng)
        payload: dict = {"values": values}
        if i % 2:
            payload["timestamps"] = [(start + timedelta(minutes=30 * k)).isoformat() for k in range(len(values))]
        mix.append(("/predict/anomaly", {"json": payload}))
    rng.shuffle(mix)
    return mix


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


async def soak(url: str, pid: int | None, args: argparse.Namespace) -> dict:
    mix = requests_mix(args.seed)
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    started = time.monotonic()
    end = started + args.minutes * 60
    warmup_end = started + args.warmup * 60
    state = {"sent": 0, "rss_start": None, "next_report": started + 60}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)

    async def client_loop(worker: int, client: httpx.AsyncClient) -> None:
        i = worker
        while time.monotonic() < end and state["sent"] < args.max_requests:
            state["sent"] += 1
            path, kwargs = mix[i % len(mix)]
            i += args.concurrency
            t = time.perf_counter()
            try:
                response = await client.post(path, **kwargs)
                status: int | str = response.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies[path].append(time.perf_counter() - t)
            statuses[path][status] += 1

    async def monitor() -> None:
        while time.monotonic() < end and state["sent"] < args.max_requests:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if state["rss_start"] is None and now >= warmup_end and pid:
                state["rss_start"] = rss_mb(pid)
                print(f"warm-up over after {now - started:.0f} s: RSS {state['rss_start']:.0f} MB", flush=True)
            if now >= state["next_report"]:
                state["next_report"] += 60
                rss = f", RSS {rss_mb(pid):.0f} MB" if pid else ""
                done = sum(len(v) for v in latencies.values())
                print(
                    f"{(now - started) / 60:4.1f} min: {done} requests ({done / (now - started):.1f}/s){rss}",
                    flush=True,
                )

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(monitor(), *(client_loop(w, client) for w in range(args.concurrency)))
    return {"latencies": latencies, "statuses": statuses, "seconds": time.monotonic() - started, **state}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=10_000_000, help="stop after this many requests")
    parser.add_argument("--warmup", type=float, default=None, help="minutes before RSS start (default min(1, 1/5))")
    parser.add_argument("--url", default=None, help="a running service instead of starting one")
    parser.add_argument("--pid", type=int, default=None, help="with --url: the server's pid, for RSS")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(1.0, args.minutes / 5)

    service = None if args.url else Service(args.models)
    url, pid = (args.url, args.pid) if service is None else (service.url, service.pid)
    try:
        rss_ready = rss_mb(pid) if pid else None
        print(
            f"soak: {args.minutes:g} min at concurrency {args.concurrency} against {url}"
            + (f" (pid {pid}, RSS {rss_ready:.0f} MB when ready)" if pid else ""),
            flush=True,
        )
        if pid:
            with RssSampler(pid, interval=0.25) as sampler:
                result = asyncio.run(soak(url, pid, args))
                peak = sampler.peak()
            rss_end = rss_mb(pid)
        else:
            result, peak, rss_end = asyncio.run(soak(url, None, args)), None, None
        alive = service is None or service.process.poll() is None
    finally:
        if service is not None:
            service.close()

    total = sum(len(v) for v in result["latencies"].values())
    errors: Counter = Counter()
    for counter in result["statuses"].values():
        errors.update({k: v for k, v in counter.items() if k != 200})
    print(
        f"\nrequests: {total} in {result['seconds']:.0f} s ({total / result['seconds']:.1f}/s), "
        f"errors: {sum(errors.values())}" + (f" by status {dict(errors)}" if errors else "")
    )
    print(f"{'endpoint':<20} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for path in sorted(result["latencies"]):
        ms = [s * 1000 for s in result["latencies"][path]]
        bad = sum(v for k, v in result["statuses"][path].items() if k != 200)
        print(f"{path:<20} {len(ms):>9} {bad:>7} {percentile(ms, 0.5):>8.1f} {percentile(ms, 0.99):>8.1f}")
    start = result["rss_start"]
    if start and rss_end:
        print(
            f"RSS: {start:.0f} MB after the {args.warmup:g}-min warm-up, {rss_end:.0f} MB at the end "
            f"({(rss_end - start) / start * 100:+.1f}%), highest {peak:.0f} MB"
        )
    mean = statistics.fmean(s for v in result["latencies"].values() for s in v) * 1000
    print(f"server process {'alive' if alive else 'DIED'}; mean latency {mean:.1f} ms")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
