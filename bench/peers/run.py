"""DeepServe against the servers users would pick instead, on the same digit model, one server at a time.

    python -m bench.peers.setup                          # once: the peers' virtualenvs (pinned versions)
    python -m bench.peers.run [--seconds 12] [--levels 1,8,32] [--servers deepserve,litserve,bentoml,naive]

Each server is started in turn on a free fixed loopback port, waited for, checked with one request per test digit,
then driven by wrk (C, answer-checking Lua script: bench/peers/load.lua) at each concurrency for `--seconds`,
and stopped with its whole process group. Prints one table (req/s, p50, p99, errors, answers correct, server
CPU% of its process tree from /proc, and the load generator's own CPU per request) and writes a PNG chart.
DeepServe runs as a user starts it (`deepserve serve`, the README's `make serve`), on the committed models.

Test digits: the 30 PNGs of ../shared/data/mnist/sample_png_test (named <label>_<i>.png), or --digits DIR.
Not part of CI; needs Debian's wrk (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import datetime
import io
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
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from bench.peers.setup import ROOT as PEERS_ROOT
from bench.peers.setup import python as peer_python

REPO = Path(__file__).resolve().parents[2]
LOAD_SCRIPT = Path(__file__).with_name("load.lua")
DIGITS = REPO.parent / "shared" / "data" / "mnist" / "sample_png_test"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    command: list[str]
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO


def deepserve(name: str, port: int, models: Path, root: Path = REPO, workers: int = 2) -> Server:
    """DeepServe as a user starts it (`deepserve serve`, whose default is 2 workers), from the checkout `root`."""
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--models", str(models), "--workers", str(workers)]
    return Server(name, command, "/health/ready", cwd=root)


def servers(port: int, models: Path, workers: int = 2) -> dict[str, Server]:
    version = json.loads((models / "digit" / "promoted.json").read_text())["version"]
    folder = models / "digit" / version
    onnx = {"DIGIT_MODEL": str(folder / "model.onnx"), "PYTHONPATH": str(REPO)}
    return {
        "deepserve": deepserve(f"DeepServe (deepserve serve --workers {workers})", port, models, workers=workers),
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


def check_free(port: int, wait: float = 10.0) -> None:
    """Exit when something listens on the port for `wait` seconds (the last server's sockets may take a moment)."""
    deadline = time.monotonic() + wait
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener fails it, TIME_WAIT does not
            try:
                s.bind(("127.0.0.1", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"port {port} is in use: stop what holds it or pass --port")
        time.sleep(0.2)


def multipart(png: bytes, name: str, part_type: str = "image/png") -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {part_type}\r\n\r\n"
    ).encode()
    return f"multipart/form-data; boundary={boundary}", head + png + f"\r\n--{boundary}--\r\n".encode()


def as_photo(png: Path, size: int) -> bytes:
    """The digit as a size x size JPEG photo: dark ink on light paper, as a phone sees a page."""
    photo = ImageOps.invert(Image.open(png).convert("L")).resize((size, size), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    photo.convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def write_bodies(digits: Path, folder: Path, photo: int = 0) -> tuple[Path, list[tuple[int, str, bytes]]]:
    """One multipart body file per test digit (its PNG, or `as_photo` at `photo` pixels), and wrk's manifest."""
    bodies, lines = [], []
    for i, png in enumerate(sorted(digits.glob("*.png"))):
        label = int(png.name.split("_")[0])
        if photo:
            content_type, body = multipart(as_photo(png, photo), f"{png.stem}.jpg", "image/jpeg")
        else:
            content_type, body = multipart(png.read_bytes(), png.name)
        path = folder / f"body{i}.bin"
        path.write_bytes(body)
        bodies.append((label, content_type, body))
        lines.append(f"{label}\t{content_type}\t{path}")
    if not bodies:
        sys.exit(f"no <label>_<i>.png digits in {digits}")
    manifest = folder / "bodies.txt"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, bodies


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


def check_answers(port: int, bodies: list[tuple[int, str, bytes]]) -> int:
    """Send every test digit once; how many answers name the right digit (a wrong route or field fails here)."""
    right = 0
    for label, content_type, body in bodies:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict/digit", data=body, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            right += json.loads(r.read())["digit"] == label
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


def measure(pid: int, url: str, concurrency: int, seconds: int, manifest: Path | None, field: str = "digit") -> dict:
    pids = tree_pids(pid)
    before = cpu_seconds(pids)
    children_before = os.times()
    result = wrk(url, concurrency, seconds, manifest, field)
    children_after = os.times()
    after = cpu_seconds(pids)
    used = sum(after[p] - before[p] for p in after if p in before)
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
        "loadgen_us_per_request": 1e6 * loadgen / requests,
    }


def run_server(key: str, server: Server, port: int, args, manifest: Path, bodies, log: Path) -> dict:
    print(f"\n{server.name}: starting ({' '.join(server.command[-6:])})", flush=True)
    process, ready = start(server, port, args.ready_timeout, log)
    try:
        pids = tree_pids(process.pid)
        right = check_answers(port, bodies)
        print(f"  ready in {ready:.1f} s, {len(pids)} processes, RSS {rss_mb(pids):.0f} MB; "
              f"{right}/{len(bodies)} test digits right", flush=True)  # fmt: skip
        rows = []
        for level in args.levels:
            row = measure(process.pid, f"http://127.0.0.1:{port}/predict/digit", level, args.seconds, manifest)
            rows.append(row)
            print(f"  c={level}: {row['rps']:.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
                  f"{row['errors']} errors, {100 * (row['correct'] or 0):.1f}% correct, "
                  f"server CPU {row['server_cpu_pct']:.0f}% ({row['server_cpu_ms_per_request']:.2f} ms/req), "
                  f"wrk {row['loadgen_us_per_request']:.0f} us/req", flush=True)  # fmt: skip
        health = None
        if key.startswith("deepserve"):
            health = measure(process.pid, f"http://127.0.0.1:{port}/health/live", 32, args.seconds, None)
            print(f"  /health/live c=32: {health['rps']:.0f} req/s, p50 {health['p50_ms']:.2f} ms, "
                  f"server {health['server_cpu_ms_per_request']:.2f} ms CPU/req", flush=True)  # fmt: skip
        return {"name": server.name, "ready_s": ready, "levels": rows, "health": health}
    finally:
        stop(process)


def table(results: dict[str, dict], levels: list[int], started: str, load: str) -> str:
    lines = [
        f"Digit model over HTTP, {started}, load average at start {load}, {os.cpu_count()} CPUs; "
        "req/s, p50 / p99 ms, errors, answers correct, server CPU% (process tree)",
        "",
        "| server | " + " | ".join(f"c={c}" for c in levels) + " | correct |",
        "|---|" + "---|" * len(levels) + "---|",
    ]
    for result in results.values():
        cells = [
            f"{r['rps']:,.0f}, {r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms, {r['errors']} err, "
            f"{r['server_cpu_pct']:.0f}% CPU ({r['server_cpu_ms_per_request']:.1f} ms/req)"
            for r in result["levels"]
        ]
        correct = [r["correct"] for r in result["levels"] if r["correct"] is not None]
        lines.append(f"| {result['name']} | " + " | ".join(cells) + f" | {100 * min(correct, default=0):.1f}% |")
    ours = results.get("deepserve")
    if ours:
        for i, c in enumerate(levels):
            rate = ours["levels"][i]["rps"]
            ratios = [f"{rate / v['levels'][i]['rps']:.2f}x {k}" for k, v in results.items() if k != "deepserve"]
            if ratios:
                lines.append(f"\nc={c}: DeepServe is " + ", ".join(ratios))
        if ours["health"]:
            health = max(ours["health"]["rps"], 1e-9)
            digit = ours["levels"][levels.index(32)]["rps"] if 32 in levels else float("nan")
            share = 100 * digit / health
            lines.append(f"\n/health/live at c=32: {health:,.0f} req/s; digit at c=32: {share:.0f}% of it")
    wrk_cost = max(r["loadgen_us_per_request"] for v in results.values() for r in v["levels"])
    lines.append(f"wrk's own CPU: at most {wrk_cost:.0f} us per request")
    return "\n".join(lines)


def chart(results: dict[str, dict], levels: list[int], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rps, p50) = plt.subplots(1, 2, figsize=(11, 4.6))
    width = 0.8 / max(len(results), 1)
    for i, result in enumerate(results.values()):
        x = [j + i * width for j in range(len(levels))]
        rps.bar(x, [r["rps"] for r in result["levels"]], width, label=result["name"])
        p50.bar(x, [r["p50_ms"] for r in result["levels"]], width, label=result["name"])
    for ax, label in ((rps, "requests/s"), (p50, "p50 latency, ms (log)")):
        ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(levels))], [f"c={c}" for c in levels])
        ax.set_ylabel(label)
    p50.set_yscale("log")
    fig.legend(*rps.get_legend_handles_labels(), loc="lower center", ncol=len(results), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="deepserve,litserve,bentoml,naive")
    p.add_argument("--levels", default="1,8,32", type=lambda s: [int(c) for c in s.split(",")])
    p.add_argument("--seconds", type=int, default=12, help="per concurrency level")
    p.add_argument("--port", type=int, default=18431, help="fixed loopback port, checked free before each server")
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
    if not args.digits.is_dir():
        sys.exit(f"no test digits: {args.digits} (pass --digits DIR of <label>_<i>.png)")
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
    load = load_average()
    print(f"{started}, load average {load}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        manifest, bodies = write_bodies(args.digits, Path(tmp))
        for key in wanted:
            check_free(args.port)
            results[key] = run_server(key, known[key], args.port, args, manifest, bodies, Path(tmp) / f"{key}.log")
    text = table(results, args.levels, started, load)
    print("\n" + text)
    chart(results, args.levels, f"digit over HTTP, {started}, load {load}", args.chart)
    print(f"chart: {args.chart}")
    if args.json:
        args.json.write_text(json.dumps({"started": started, "load": load, "results": results}, indent=1))


if __name__ == "__main__":
    main()
