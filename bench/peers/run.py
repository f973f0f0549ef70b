"""DeepServe against the servers users would pick instead, on the same digit model, one server at a time.

    python -m bench.peers.setup                          # once: the peers' virtualenvs (pinned versions)
    apt-get install -y wrk libb64-0d                     # once: wrk, and the library perf_analyzer loads
    python -m bench.peers.run [--seconds 12] [--levels 1,8,32] [--runs 3] [--clients wrk,asyncio,perf_analyzer]
        [--servers deepserve,triton,mlserver,litserve,bentoml,naive]

Each run starts each server in turn on a free fixed loopback port (and the next two, for the peers' gRPC and
metrics), waits for it, checks one request per test digit in each request form the clients send, warms it up
(`--warmup` seconds of wrk, not measured), drives it with each client at each concurrency for `--seconds`, and
stops it with its whole process group. Clients: wrk (C, answer-checking Lua script: bench/peers/load.lua),
bench/peers/asyncio_client.py (Python, one connection per in-flight request, every answer checked) and Triton's
perf_analyzer (bench/peers/perf_analyzer.py; the servers that speak Triton's protocol: DeepServe, Triton). wrk
and the asyncio client send each server its own request (bench/peers/bodies.py): DeepServe, LitServe, BentoML and
the naive server the multipart upload of POST /predict/digit, Triton the protocol's binary-data extension, MLServer
its JSON (base64).

Prints every run's rows, then one table per client whose cells are the worst of the runs for each figure (the
lowest req/s; the highest p50, p99 and server CPU per request; every error and wrong answer), with the load
average at each start, and DeepServe's ratios to Triton and to the best of MLServer, LitServe and BentoML per
client and concurrency; writes a PNG chart (wrk's cells). Server CPU is that of the server's process tree, from
/proc. DeepServe runs as a user starts it (`deepserve serve`, the README's `make serve`), on the committed models.

Test digits: the 30 PNGs of ../shared/data/mnist/sample_png_test (named <label>_<i>.png), or --digits DIR.
Not part of CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.peers import perf_analyzer
from bench.peers.bodies import Body, Encoder, answer, multipart, oip_base64, oip_binary, write_bodies
from bench.peers.setup import ROOT as PEERS_ROOT
from bench.peers.setup import python as peer_python

REPO = Path(__file__).resolve().parents[2]
LOAD_SCRIPT = Path(__file__).with_name("load.lua")
DIGITS = REPO.parent / "shared" / "data" / "mnist" / "sample_png_test"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


CLIENTS = ("wrk", "asyncio", "perf_analyzer")
OTHERS = ("mlserver", "litserve", "bentoml")  # the "best of": DeepServe is to beat them by 3x, Triton by 2x
OIP_DIGIT = "/v2/models/digit/infer"


@dataclass
class Server:
    name: str
    command: list[str]
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    path: str = "/predict/digit"  # where wrk and the asyncio client POST
    encode: Encoder = multipart  # what they POST there
    oip_shape: tuple[int, ...] | None = None  # `image`'s shape in Triton's protocol; None: perf_analyzer can't drive it


def deepserve(name: str, port: int, models: Path, root: Path = REPO, workers: int = 2) -> Server:
    """DeepServe as a user starts it (`deepserve serve`, whose default is 2 workers), from the checkout `root`."""
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--models", str(models), "--workers", str(workers)]
    return Server(name, command, "/health/ready", cwd=root, oip_shape=(1,))


def servers(port: int, models: Path, workers: int = 2) -> dict[str, Server]:
    version = json.loads((models / "digit" / "promoted.json").read_text())["version"]
    folder = models / "digit" / version
    onnx = {"DIGIT_MODEL": str(folder / "model.onnx"), "PYTHONPATH": str(REPO)}
    mlserver_ports = {f"MLSERVER_{kind}_PORT": str(port + i) for i, kind in enumerate(("HTTP", "GRPC", "METRICS"))}
    return {
        "deepserve": deepserve(f"DeepServe (deepserve serve --workers {workers})", port, models, workers=workers),
        "triton": Server(
            "Triton 2.51 (PyTriton 0.7) + ONNX Runtime, dynamic batching",
            [str(peer_python("triton")), "-m", "bench.peers.triton_server", "--port", str(port)],
            "/v2/models/digit/ready",
            onnx,
            path=OIP_DIGIT,
            encode=oip_binary,
            oip_shape=(1, 1),
        ),
        "mlserver": Server(
            "MLServer 1.7.1 custom runtime + ONNX Runtime",
            [str(peer_python("mlserver").parent / "mlserver"), "start", "bench/peers/mlserver_models"],
            "/v2/models/digit/ready",
            {**onnx, **mlserver_ports, "MLSERVER_HOST": "127.0.0.1"},
            path=OIP_DIGIT,
            encode=oip_base64,
        ),
        "litserve": Server(
            "LitServe 0.2.19 + ONNX Runtime",
            [str(peer_python("litserve")), "-m", "bench.peers.litserve_server", "--port", str(port)],
            "/health",
            onnx,
        ),
        "bentoml": Server(
            "BentoML 1.4.39 + ONNX Runtime",
            [str(peer_python("bentoml").parent / "bentoml"), "serve", "bench.peers.bentoml_service:Digit",
             "--host", "127.0.0.1", "--port", str(port)],
            "/readyz",
            onnx,
        ),
        "naive": Server(
            "naive FastAPI + Keras model.predict",
            [str(peer_python("naive")), "-m", "uvicorn", "bench.peers.naive_keras:app", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"],
            "/health",
            {**onnx, "DIGIT_MODEL": str(folder / "model.keras"), "TF_CPP_MIN_LOG_LEVEL": "3"},
        ),
    }  # fmt: skip


def check_free(port: int, wait: float = 10.0, count: int = 3) -> None:
    """Exit when something listens on the port or the `count - 1` after it (the peers' gRPC and metrics) for `wait`
    seconds (the last server's sockets may take a moment)."""
    deadline = time.monotonic() + wait
    for p in range(port, port + count):
        while True:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener fails it, TIME_WAIT does not
                try:
                    s.bind(("127.0.0.1", p))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit(f"port {p} is in use: stop what holds it or pass --port")
            time.sleep(0.2)


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process (all its threads), from /proc/PID/stat."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start(server: Server, port: int, timeout: float, log: Path) -> tuple[subprocess.Popen, float]:
    """The server in its own process group (its log in `log`: a pipe nobody reads would block it), once ready."""
    env = {**os.environ, **server.env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            server.command, cwd=server.cwd, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT
        )
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{server.ready_path}", timeout=2) as r:
                if r.status == 200:
                    return process, time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"{server.name} was not ready within {timeout:.0f} s: {log.read_text()[-2000:]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group, then SIGKILL to whatever of it is left after 15 s; returns once
    no process of the group is left (workers that outlive their parent hold the port)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    deadline = time.monotonic() + 15
    while (process.poll() is None or _group_alive(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(process.pid):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    while _group_alive(process.pid):
        time.sleep(0.1)


def check_answers(port: int, bodies: list[tuple[int, Body]], path: str = "/predict/digit") -> int:
    """Send every test digit once; how many answers name the right digit (a wrong route or field fails here)."""
    right = 0
    for label, body in bodies:
        headers = {"Content-Type": body.content_type, **dict([body.header] if body.header else [])}
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.data, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as r:
            right += answer(r.read()) == str(label)
    return right


def wrk(url: str, concurrency: int, seconds: int, manifest: Path | None, field: str = "digit") -> dict:
    """One wrk run: its done() line (load.lua), answers checked in the response's `field`."""
    command = ["wrk", "-t", str(concurrency), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s"]
    command += ["-s", str(LOAD_SCRIPT), url]
    if manifest is not None:
        command += ["--", str(manifest), field]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate()
    if process.returncode != 0 or not out.strip().splitlines()[-1:][0].startswith("{"):
        raise RuntimeError(f"wrk failed ({process.returncode}): {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def asyncio_client(url: str, concurrency: int, seconds: int, manifest: Path, field: str = "digit") -> dict:
    """One run of bench/peers/asyncio_client.py, in its own process as wrk is (its CPU is counted the same way)."""
    command = [sys.executable, "-m", "bench.peers.asyncio_client", url, str(manifest), "--field", field,
               "-c", str(concurrency), "-d", str(seconds)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60 + 2 * seconds)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise RuntimeError(f"asyncio client failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return json.loads(lines[-1])


def measure(pid: int, concurrency: int, load: Callable[[], dict]) -> dict:
    """One load generator run (`load`: wrk, the asyncio client or perf_analyzer, with its done() keys) and the
    server's process tree's CPU meanwhile."""
    pids = tree_pids(pid)
    before = cpu_seconds(pids)
    children_before = os.times()
    result = load()
    children_after = os.times()
    after = cpu_seconds(pids)
    each = sorted((after[p] - before[p] for p in after if p in before), reverse=True)
    used = sum(each)
    loadgen = result.get("client_cpu_seconds")  # the asyncio client's own, without its interpreter's start
    if loadgen is None:
        loadgen = (children_after.children_user + children_after.children_system) - (
            children_before.children_user + children_before.children_system
        )
    requests = max(result["requests"], 1)
    errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "concurrency": concurrency,
        "rps": result["requests"] / result["seconds"],
        "right_per_second": (result["checked"] - result["wrong"]) / result["seconds"],  # 200s with the right answer
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "errors": errors,
        "wrong_answers": result["wrong"] - result["status_errors"],  # 200s with another digit (a status error counts)
        "correct": (result["checked"] - result["wrong"]) / result["checked"] if result["checked"] else None,
        "server_cpu_pct": 100 * used / result["seconds"],
        "server_cpu_ms_per_request": 1e3 * used / requests,
        "process_cpu_pct": [100 * cpu / result["seconds"] for cpu in each if cpu >= 0.01 * result["seconds"]],
        "loadgen_us_per_request": 1e6 * loadgen / requests,
    }


def describe(row: dict) -> str:
    correct = "answers not checked" if row["correct"] is None else f"{100 * row['correct']:.1f}% correct"
    return (f"{row['rps']:.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, {row['errors']} errors, "
            f"{correct}, server CPU {row['server_cpu_pct']:.0f}% ({row['server_cpu_ms_per_request']:.3f} ms/req; "
            f"by process {' + '.join(f'{pct:.0f}%' for pct in row['process_cpu_pct'])}), "
            f"client {row['loadgen_us_per_request']:.0f} us/req")  # fmt: skip


def run_server(key: str, server: Server, port: int, args, folder: Path, input_data: Path) -> dict:
    """One server started, checked and driven by every client at every level, then stopped: its rows by client and
    level (None where a load generator failed)."""
    print(f"\n{server.name}: starting ({' '.join(server.command[-6:])})", flush=True)
    (folder / key).mkdir(exist_ok=True)
    manifest, bodies = write_bodies(args.digits, folder / key, encode=server.encode)
    process, ready = start(server, port, args.ready_timeout, folder / f"{key}.log")
    try:
        pids = tree_pids(process.pid)
        url = f"http://127.0.0.1:{port}{server.path}"
        right = {"wrk": check_answers(port, bodies, server.path)}
        right["asyncio"] = right["wrk"]
        loads: dict[str, Callable[[int], dict]] = {
            "wrk": lambda c: wrk(url, c, args.seconds, manifest),
            "asyncio": lambda c: asyncio_client(url, c, args.seconds, manifest),
        }
        if server.oip_shape:  # perf_analyzer's requests (it cannot check answers): these answers checked first
            (folder / f"{key}-oip").mkdir(exist_ok=True)
            encode = partial(oip_binary, shape=server.oip_shape)
            _, oip = write_bodies(args.digits, folder / f"{key}-oip", encode=encode)
            right["perf_analyzer"] = check_answers(port, oip, OIP_DIGIT)
            address = f"127.0.0.1:{port}"
            loads["perf_analyzer"] = lambda c: perf_analyzer.run(address, "digit", c, args.seconds, input_data)
        print(f"  ready in {ready:.1f} s, {len(pids)} processes, RSS {rss_mb(pids):.0f} MB; test digits right: "
              + ", ".join(f"{client} {n}/{len(bodies)}" for client, n in right.items()), flush=True)  # fmt: skip
        if args.warmup:  # not measured: every worker process and thread has served before the first figure
            wrk(url, max(args.levels), args.warmup, manifest)
        cells: dict[str, dict[int, dict | None]] = {}
        for client in args.clients:
            if client not in loads:
                continue
            for level in args.levels:
                try:
                    row = measure(process.pid, level, partial(loads[client], level))
                    print(f"  {client} c={level}: {describe(row)}", flush=True)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    row = None
                    print(f"  {client} c={level}: FAILED {exc}", flush=True)
                cells.setdefault(client, {})[level] = row
                if process.poll() is not None:
                    log = (folder / f"{key}.log").read_text(errors="replace")
                    raise RuntimeError(f"{server.name} exited with {process.returncode}: {log[-3000:]}")
        health = None
        if key.startswith("deepserve") and "wrk" in args.clients:
            live = f"http://127.0.0.1:{port}/health/live"
            health = measure(process.pid, 32, partial(wrk, live, 32, args.seconds, None))
            print(f"  /health/live c=32: {health['rps']:.0f} req/s, p50 {health['p50_ms']:.2f} ms, "
                  f"server {health['server_cpu_ms_per_request']:.2f} ms CPU/req", flush=True)  # fmt: skip
        return {"name": server.name, "ready_s": ready, "right": right, "digits": len(bodies), "cells": cells,
                "health": health}  # fmt: skip
    finally:
        stop(process)


def worst(rows: list[dict | None]) -> dict | None:
    """The runs of one cell as one row, each figure the worst of them; None if any run failed."""
    if not rows or any(row is None for row in rows):
        return None
    done = [row for row in rows if row is not None]
    correct = [row["correct"] for row in done if row["correct"] is not None]
    return {
        "concurrency": done[0]["concurrency"],
        "rps": min(row["rps"] for row in done),
        "right_per_second": min(row["right_per_second"] for row in done),
        "p50_ms": max(row["p50_ms"] for row in done),
        "p99_ms": max(row["p99_ms"] for row in done),
        "errors": sum(row["errors"] for row in done),
        "wrong_answers": sum(row["wrong_answers"] for row in done),
        "correct": min(correct) if correct else None,
        "server_cpu_pct": max(row["server_cpu_pct"] for row in done),
        "server_cpu_ms_per_request": max(row["server_cpu_ms_per_request"] for row in done),
        "loadgen_us_per_request": max(row["loadgen_us_per_request"] for row in done),
    }


def combine(runs: list[dict[str, dict]], clients: list[str], levels: list[int]) -> dict[str, dict]:
    """Per server: its name, every run's check of the test digits, and per client and level the worst row."""
    out: dict[str, dict] = {}
    for run in runs:
        for key, result in run.items():
            entry = out.setdefault(key, {"name": result["name"], "right": [], "digits": 0, "cells": {}})
            entry["right"].append(result["right"])
            entry["digits"] = max(entry["digits"], result["digits"])
    for key, entry in out.items():
        for client in clients:
            mine = [run[key]["cells"].get(client) for run in runs if key in run]
            if any(mine):
                by_level = {level: [cells.get(level) for cells in mine if cells] for level in levels}
                entry["cells"][client] = {level: worst(rows) for level, rows in by_level.items()}
        healths = [run[key]["health"] for run in runs if key in run and run[key]["health"]]
        entry["health"] = min(healths, key=lambda row: row["rps"]) if healths else None
    return out


def cell(row: dict | None) -> str:
    if row is None:
        return "failed"
    return (f"{row['rps']:,.0f}, {row['p50_ms']:.2f} / {row['p99_ms']:.1f} ms, {row['errors']} err, "
            f"{row['server_cpu_ms_per_request']:.2f} ms CPU/req")  # fmt: skip


def ratios(results: dict[str, dict], client: str, level: int) -> str | None:
    """DeepServe's req/s over Triton's and over the best of MLServer, LitServe and BentoML (and the naive one's)."""
    rates = {}
    for key, result in results.items():
        row = result["cells"].get(client, {}).get(level)
        if row and row["rps"] > 0:
            rates[key] = row["rps"]
    ours = rates.get("deepserve")
    if not ours:
        return None
    parts = [f"{ours / rates['triton']:.2f}x Triton"] if "triton" in rates else []
    others = {key: rates[key] for key in OTHERS if key in rates}
    if others:
        best = max(others, key=others.__getitem__)
        parts.append(f"{ours / others[best]:.2f}x the best of {'/'.join(others)} ({best})")
    if "naive" in rates:
        parts.append(f"{ours / rates['naive']:.1f}x naive")
    return f"{client} c={level}: DeepServe " + ", ".join(parts) if parts else None


def table(results: dict[str, dict], clients: list[str], levels: list[int], started: str, loads: list[str],
          runs: int) -> str:  # fmt: skip
    lines = [
        f"Digit model over HTTP, {started}, {os.cpu_count()} CPUs, load average at each run's start: "
        f"{'; '.join(loads)}. Each cell: the worst of {runs} run(s) per figure: req/s, p50 / p99 ms, errors, "
        "server CPU per request (its process tree)."
    ]
    for client in clients:
        keys = [key for key, result in results.items() if client in result["cells"]]
        if not keys:
            continue
        lines += ["", f"{client}:", "", "| server | " + " | ".join(f"c={c}" for c in levels) + " | correct |",
                  "|---|" + "---|" * len(levels) + "---|"]  # fmt: skip
        for key in keys:
            result = results[key]
            rows = [result["cells"][client][level] for level in levels]
            correct = [row["correct"] for row in rows if row and row["correct"] is not None]
            right = min(run.get(client, 0) for run in result["right"])
            shown = f"{100 * min(correct):.1f}%" if correct else f"not checked ({right}/{result['digits']} before)"
            if any(row is None for row in rows):
                shown = "failed in a run"
            lines.append(f"| {result['name']} | " + " | ".join(cell(row) for row in rows) + f" | {shown} |")
        lines.append("")
        lines += [line for level in levels if (line := ratios(results, client, level))]
    ours = results.get("deepserve")
    if ours and ours["health"]:
        health = max(ours["health"]["rps"], 1e-9)
        digit = ours["cells"].get("wrk", {}).get(32)
        share = f"; digit at c=32: {100 * digit['rps'] / health:.0f}% of it" if digit else ""
        lines.append(f"\n/health/live at c=32 (wrk): {health:,.0f} req/s{share}")
    for client in clients:
        cost = [row["loadgen_us_per_request"] for result in results.values()
                for row in result["cells"].get(client, {}).values() if row]  # fmt: skip
        if cost:
            lines.append(f"{client}'s own CPU: at most {max(cost):.0f} us per request")
    return "\n".join(lines)


def chart(results: dict[str, dict], client: str, levels: list[int], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {key: result for key, result in results.items() if client in result["cells"]}
    fig, (rps, p50) = plt.subplots(1, 2, figsize=(11, 4.6))
    width = 0.8 / max(len(shown), 1)
    for i, result in enumerate(shown.values()):
        x = [j + i * width for j in range(len(levels))]
        rows = [result["cells"][client][level] for level in levels]
        rps.bar(x, [row["rps"] if row else 0 for row in rows], width, label=result["name"])
        p50.bar(x, [row["p50_ms"] if row else 0 for row in rows], width, label=result["name"])
    for ax, label in ((rps, "requests/s"), (p50, "p50 latency, ms (log)")):
        ax.set_xticks([j + width * (len(shown) - 1) / 2 for j in range(len(levels))], [f"c={c}" for c in levels])
        ax.set_ylabel(label)
    p50.set_yscale("log")
    fig.legend(*rps.get_legend_handles_labels(), loc="lower center", ncol=min(len(shown), 3), fontsize=8)
    fig.suptitle(f"{title}, {client}", fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="deepserve,triton,mlserver,litserve,bentoml,naive")
    p.add_argument("--clients", default=",".join(CLIENTS), type=lambda s: [c.strip() for c in s.split(",") if c])
    p.add_argument("--levels", default="1,8,32", type=lambda s: [int(c) for c in s.split(",")])
    p.add_argument("--seconds", type=int, default=12, help="per client and concurrency level")
    p.add_argument("--runs", type=int, default=3, help="each server started this many times, in turn")
    p.add_argument("--warmup", type=int, default=2, help="seconds of wrk at the highest level after each start")
    p.add_argument("--port", type=int, default=18431, help="fixed loopback port (and the next two), checked free")
    p.add_argument("--models", type=Path, default=REPO / "models")
    p.add_argument("--digits", type=Path, default=DIGITS)
    p.add_argument("--ready-timeout", type=float, default=120.0)
    p.add_argument("--chart", type=Path, default=REPO / "docs" / "peers.png", help="the PNG chart (README)")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--workers", type=int, default=2, help="DeepServe's `deepserve serve --workers` (its default)")
    p.add_argument(
        "--deepserve-at",
        type=Path,
        action="append",
        default=[],
        help="also run DeepServe from this checkout (e.g. `git archive main | tar -x -C /tmp/main`), first",
    )
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # the running server is stopped on the way out
    if not args.digits.is_dir():
        sys.exit(f"no test digits: {args.digits} (pass --digits DIR of <label>_<i>.png)")
    unknown = sorted(set(args.clients) - set(CLIENTS))
    if unknown:
        sys.exit(f"unknown clients: {', '.join(unknown)}; known: {', '.join(CLIENTS)}")
    if "perf_analyzer" in args.clients and (problem := perf_analyzer.missing()):
        sys.exit(problem)
    known = servers(args.port, args.models.resolve(), args.workers)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    for root in args.deepserve_at:  # the same models, another checkout's code
        key = f"deepserve@{root.name}"
        known[key] = deepserve(
            f"DeepServe ({root.name})", args.port, args.models.resolve(), root.resolve(), args.workers
        )
        wanted.insert(0, key)
    for key in wanted:
        if key not in known:
            sys.exit(f"unknown server {key}; known: {', '.join(known)}")
        if not key.startswith("deepserve") and not peer_python(key).exists():
            sys.exit(f"{key} is not installed in {PEERS_ROOT}: python -m bench.peers.setup --peers {key}")
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs: list[dict[str, dict]] = []
    loads = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        input_data = perf_analyzer.write_input_data(args.digits, Path(tmp) / "perf_analyzer.json")
        for number in range(1, args.runs + 1):
            loads.append(load_average())
            print(f"\nrun {number} of {args.runs}, {datetime.datetime.now(datetime.UTC):%H:%M:%S} UTC, "
                  f"load average {loads[-1]}", flush=True)  # fmt: skip
            run: dict[str, dict] = {}
            for key in wanted:
                check_free(args.port)
                try:
                    run[key] = run_server(key, known[key], args.port, args, Path(tmp), input_data)
                except RuntimeError as exc:  # it did not start, or it died: every cell of this run fails
                    print(f"  FAILED: {exc}", flush=True)
                    drives = [c for c in args.clients if c != "perf_analyzer" or known[key].oip_shape]
                    failed = {client: dict.fromkeys(args.levels) for client in drives}
                    run[key] = {"name": known[key].name, "right": {}, "digits": 0, "cells": failed, "health": None}
            runs.append(run)
    results = combine(runs, args.clients, args.levels)
    text = table(results, args.clients, args.levels, started, loads, args.runs)
    print("\n" + text)
    chart(results, args.clients[0], args.levels, f"digit over HTTP, {started}, load {loads[0]}", args.chart)
    print(f"chart: {args.chart}")
    if args.json:
        raw = {"started": started, "loads": loads, "results": results, "runs": runs}
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
