"""Two DeepServe checkouts side by side on a busy machine: both started at once, then short wrk runs alternating
between them, so drifting load from other processes falls on both alike.

    python -m bench.peers.ab /tmp/old-checkout [/tmp/new-checkout, default this one] [--rounds 4] [--seconds 5]

Each server is `deepserve serve` (one process unless --workers) on the committed models; every answer is checked as
in bench/peers/run.py. Prints, per concurrency level, each checkout's median over the rounds of server CPU per
request (from /proc, the steadier figure here) and req/s, and the new one's change.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.peers.run import (
    DIGITS,
    REPO,
    check_answers,
    check_free,
    deepserve,
    load_average,
    measure,
    start,
    stop,
    write_bodies,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path, nargs="?", default=REPO)
    p.add_argument("--levels", default="8,32", type=lambda s: [int(c) for c in s.split(",")])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=int, default=5, help="per run")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--port", type=int, default=18441, help="the old one's; the new one's is the next")
    args = p.parse_args()
    models = (REPO / "models").resolve()
    runs: dict[tuple[str, int], list[dict]] = {}
    print(f"load average {load_average()}")
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        manifest, bodies = write_bodies(DIGITS, Path(tmp))
        servers = {}
        try:
            for i, (key, root) in enumerate((("old", args.old), ("new", args.new))):
                port = args.port + i
                check_free(port)
                server = deepserve(f"{key} ({root})", port, models, root.resolve(), args.workers)
                process, _ = start(server, port, 120, Path(tmp) / f"{key}.log")
                servers[key] = (process, port)
                assert check_answers(port, bodies) == len(bodies), f"{key} misread a test digit"
            for round_ in range(args.rounds):
                for level in args.levels:
                    order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
                    for key in order:
                        process, port = servers[key]
                        url = f"http://127.0.0.1:{port}/predict/digit"
                        row = measure(process.pid, url, level, args.seconds, manifest)
                        assert row["errors"] == 0 and row["correct"] == 1.0, row
                        runs.setdefault((key, level), []).append(row)
        finally:
            for process, _ in servers.values():
                stop(process)
    print(f"load average {load_average()}; medians of {args.rounds} alternating {args.seconds} s runs")
    print("| c | old CPU ms/req | new CPU ms/req | change | old req/s | new req/s |\n|---|---|---|---|---|---|")
    for level in args.levels:
        cpu = {k: statistics.median(r["server_cpu_ms_per_request"] for r in runs[(k, level)]) for k in ("old", "new")}
        rps = {k: statistics.median(r["rps"] for r in runs[(k, level)]) for k in ("old", "new")}
        change = 100 * (cpu["new"] / cpu["old"] - 1)
        cells = [f"{cpu['old']:.3f}", f"{cpu['new']:.3f}", f"{change:+.1f}%", f"{rps['old']:.0f}", f"{rps['new']:.0f}"]
        print(f"| {level} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
