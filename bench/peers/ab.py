"""Two DeepServe checkouts side by side on a busy machine: both started at once, then short wrk runs alternating
between them, so drifting load from other processes falls on both alike.

    python -m bench.peers.ab /tmp/old-checkout [/tmp/new-checkout, default this one] [--rounds 4] [--seconds 5]
    python -m bench.peers.ab /tmp/old-checkout --photos 1024 --workers 2 --levels 32   # the digits as large photos
    python -m bench.peers.ab /tmp/old-checkout --own-models   # each checkout serves its own models/ folder

Each server is `deepserve serve` (one process unless --workers) on the committed models; every answer is checked as
in bench/peers/run.py. Prints, per concurrency level, each checkout's median over the rounds of server CPU per right
answer (from /proc, the steadier figure here; per request when none failed), req/s, right answers/s and errors, and
the new one's CPU change.
With --photos N the 30 digits are sent as NxN JPEG photos (dark ink on light paper): errors (429 when the memory
budget is in use) are then counted, not refused; a wrong answer never is.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.peers.bodies import write_bodies
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
    wrk,
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
    p.add_argument("--photos", type=int, default=0, help="send the digits as NxN JPEG photos (0: the PNGs)")
    p.add_argument("--own-models", action="store_true", help="each checkout serves its models/ (default: this one's)")
    args = p.parse_args()
    models = (REPO / "models").resolve()
    runs: dict[tuple[str, int], list[dict]] = {}
    print(f"load average {load_average()}")
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        manifest, bodies = write_bodies(DIGITS, Path(tmp), args.photos)
        servers = {}
        try:
            for i, (key, root) in enumerate((("old", args.old), ("new", args.new))):
                port = args.port + i
                check_free(port)
                served = (root / "models").resolve() if args.own_models else models
                server = deepserve(f"{key} ({root})", port, served, root.resolve(), args.workers)
                process, _ = start(server, port, 120, Path(tmp) / f"{key}.log")
                servers[key] = (process, port)
                assert check_answers(port, bodies) == len(bodies), f"{key} misread a test digit"
            for round_ in range(args.rounds):
                for level in args.levels:
                    order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
                    for key in order:
                        process, port = servers[key]
                        url = f"http://127.0.0.1:{port}/predict/digit"
                        time.sleep(1)  # the work wrk left in flight when it stopped the last run ends first
                        row = measure(process.pid, level, partial(wrk, url, level, args.seconds, manifest))
                        assert row["wrong_answers"] == 0 and (args.photos or row["errors"] == 0), row
                        runs.setdefault((key, level), []).append(row)
                        print(f"round {round_} c={level} {key}: {row['rps']:.0f} req/s, {row['right_per_second']:.0f} "
                              f"right/s, {row['errors']} errors", flush=True)  # fmt: skip
        finally:
            for process, _ in servers.values():
                stop(process)
    print(f"load average {load_average()}; medians of {args.rounds} alternating {args.seconds} s runs")
    head = ["old CPU ms/right answer", "new CPU ms/right answer", "change", "old req/s", "new req/s"]
    head += ["old right/s", "new right/s", "old errors", "new errors"]
    print("| c | " + " | ".join(head) + " |\n" + "|---" * (len(head) + 1) + "|")
    for level in args.levels:
        for row in (r for k in ("old", "new") for r in runs[(k, level)]):  # as per request when all are right
            row["cpu_ms_per_right"] = 10 * row["server_cpu_pct"] / max(row["right_per_second"], 1e-9)
        med = {
            (k, f): statistics.median(r[f] for r in runs[(k, level)])
            for k in ("old", "new")
            for f in ("cpu_ms_per_right", "rps", "right_per_second", "errors")
        }
        cpu = [med[(k, "cpu_ms_per_right")] for k in ("old", "new")]
        cells = [f"{cpu[0]:.3f}", f"{cpu[1]:.3f}", f"{100 * (cpu[1] / cpu[0] - 1):+.1f}%"]
        cells += [f"{med[(k, f)]:.0f}" for f in ("rps", "right_per_second", "errors") for k in ("old", "new")]
        print(f"| {level} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
