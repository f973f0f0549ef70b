"""Memory under bursts of large valid requests: peak and settled RSS of the whole service, baseline vs. bounded.

    python -m bench.memory_burst                       # the committed models in models/
    python -m bench.memory_burst --models /path/to/models --baseline-root ../old-checkout

Starts the real service twice (uvicorn subprocess on a free loopback port), one after the other in the same
run: `baseline` with the cost budget off (DEEPSERVE_MAX_INFLIGHT_MB=1000000; or, with --baseline-root, another
checkout's code, e.g. the commit before the limits), then `bounded` with the defaults. Each runs the same bursts,
one after another on one process:

    sentiment  40 concurrent POST /predict/sentiment, 32 texts x 640 words each, "model": "lstm"
    anomaly    40 concurrent POST /predict/anomaly, 1,000 points each
    digit      8 concurrent POST /predict/digit, a 4096x4096 RGBA PNG (~70 KB) each
    image      the same 8 to /predict/image, only when an image model is ready

and samples the server's RSS every 20 ms (/proc/PID/status VmRSS). It prints, per burst: the statuses (429s
counted with and without Retry-After), the peak RSS during the burst and the RSS 2 s after it; then the bounded
run's peaks as ratios of the baseline's, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.service import ROOT, RssSampler, Service, digit_png, review, series

LIMIT_MB = 1536  # the target: the whole service under 1.5 GB


@dataclass
class Burst:
    name: str
    path: str
    count: int
    kwargs: dict
    model: str


@dataclass
class Result:
    statuses: Counter = field(default_factory=Counter)
    no_retry_after: int = 0
    peak_mb: float = 0.0
    after_mb: float = 0.0
    seconds: float = 0.0


def bursts(args: argparse.Namespace) -> list[Burst]:
    rng = random.Random(0)
    texts = [review(args.words, rng) for _ in range(args.texts)]
    png = digit_png(args.image_size, "RGBA")
    image = {"content": png, "headers": {"content-type": "image/png"}}
    return [
        Burst("sentiment", "/predict/sentiment", args.requests, {"json": {"texts": texts, "model": "lstm"}}, "lstm"),
        Burst("anomaly", "/predict/anomaly", args.requests, {"json": {"values": series(args.points, rng)}}, "anomaly"),
        Burst("digit", "/predict/digit", args.images, image, "digit"),
        Burst("image", "/predict/image", args.images, image, "image"),
    ]


async def fire(url: str, burst: Burst) -> list[httpx.Response | Exception]:
    limits = httpx.Limits(max_connections=burst.count + 4, max_keepalive_connections=burst.count + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one() -> httpx.Response | Exception:
            try:
                return await client.post(burst.path, **burst.kwargs)
            except httpx.HTTPError as exc:
                return exc

        return await asyncio.gather(*(one() for _ in range(burst.count)))


def run(label: str, models: Path, env: dict[str, str], root: Path, args: argparse.Namespace) -> dict[str, Result]:
    results: dict[str, Result] = {}
    with Service(models, env, app_root=root) as service, RssSampler(service.pid) as sampler:
        ready = service.models()
        start_mb = service.rss_mb()
        print(f"\n{label}: pid {service.pid}, {root}, env {env or 'defaults'}; RSS when ready {start_mb:.0f} MB")
        for burst in bursts(args):
            if ready.get(burst.model) != "ready":
                continue
            sampler.reset()
            started = time.perf_counter()
            responses = asyncio.run(fire(service.url, burst))
            result = Result(seconds=time.perf_counter() - started)
            result.peak_mb = sampler.peak()
            for r in responses:
                if isinstance(r, Exception):
                    result.statuses[type(r).__name__] += 1
                    continue
                result.statuses[r.status_code] += 1
                if r.status_code == 429 and not r.headers.get("retry-after", "").isdigit():
                    result.no_retry_after += 1
            time.sleep(args.settle)
            result.after_mb = service.rss_mb()
            results[burst.name] = result
        alive = service.process.poll() is None
    print(f"{'burst':<10} {'statuses':<28} {'peak RSS':>9} {'RSS after':>10} {'seconds':>8}")
    for name, r in results.items():
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items(), key=str))
        if r.no_retry_after:
            statuses += f" ({r.no_retry_after} 429 without Retry-After)"
        print(f"{name:<10} {statuses:<28} {r.peak_mb:>6.0f} MB {r.after_mb:>7.0f} MB {r.seconds:>8.1f}")
    peak = max((r.peak_mb for r in results.values()), default=0.0)
    bad = sum(v for r in results.values() for k, v in r.statuses.items() if k not in (200, 429))
    bad += sum(r.no_retry_after for r in results.values())
    verdict = "ok" if peak < LIMIT_MB and not bad and alive else "NOT MET"
    print(
        f"peak of the run {peak:.0f} MB (target < {LIMIT_MB} MB), other than 200/429+Retry-After: {bad}, "
        f"process {'alive' if alive else 'DIED'}: {verdict}"
    )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--baseline-root", type=Path, default=None, help="serve the baseline from this checkout")
    parser.add_argument("--only", choices=["baseline", "bounded"], default=None)
    parser.add_argument("--requests", type=int, default=40, help="concurrent sentiment and anomaly requests")
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--words", type=int, default=640)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--images", type=int, default=8, help="concurrent image requests")
    parser.add_argument("--image-size", type=int, default=4096)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before 'RSS after'")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for both servers (repeatable)")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)

    runs = {}
    if args.only in (None, "baseline"):
        root = args.baseline_root or ROOT
        env = extra if args.baseline_root else {"DEEPSERVE_MAX_INFLIGHT_MB": "1000000", **extra}
        runs["baseline"] = run("baseline", args.models, env, root.resolve(), args)
    if args.only in (None, "bounded"):
        runs["bounded"] = run("bounded", args.models, extra, ROOT, args)
    if len(runs) == 2:
        print("\nbounded / baseline:")
        for name, bounded in runs["bounded"].items():
            base = runs["baseline"].get(name)
            if base:
                peak, after = bounded.peak_mb / base.peak_mb, bounded.after_mb / base.after_mb
                print(f"  {name:<10} peak {peak:.2f}x, after {after:.2f}x")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
