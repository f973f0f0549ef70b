"""Triton's own load tool, perf_analyzer (from the tritonclient 2.51 wheel), as a third load generator: it drives
any server that speaks Triton's HTTP protocol, DeepServe included.

    python -m bench.peers.setup --peers perf_analyzer && apt-get install -y libb64-0d      # once
    python -m bench.peers.perf_analyzer 127.0.0.1:8000 [-m digit] [-c 8] [-d 3]

It reads the model's metadata and config (GET /v2/models/{name}, .../config) and sends data for every input the
metadata lists, here the 30 test digits as the `image` BYTES element of shape [1] (input data: `write_input_data`),
in the binary-data extension, one connection per in-flight request, for three back-to-back measurement windows
of a third of the run each (stability not required: a shared machine never is). It cannot check answers: its
`validation_data` must match every output byte for byte, confidences included, which batching changes in the
last bits; run.py checks the same requests' answers before the load instead. Its binary needs libcudart.so.12 even
for HTTP (the nvidia-cuda-runtime-cu12 wheel beside it, put on LD_LIBRARY_PATH here) and Debian's libb64-0d.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.peers.setup import ROOT

VENV = ROOT / "perf_analyzer"
BINARY = VENV / "bin" / "perf_analyzer"


def environment() -> dict[str, str]:
    """The environment perf_analyzer starts in: the CUDA runtime wheel's libcudart on the library path."""
    libs = [str(p) for p in VENV.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib")]
    return {**os.environ, "LD_LIBRARY_PATH": ":".join([*libs, os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(":")}


def missing() -> str | None:
    """Why perf_analyzer cannot run here (None: it can)."""
    if not BINARY.exists():
        return f"no {BINARY}: python -m bench.peers.setup --peers perf_analyzer"
    libraries = subprocess.run(["ldd", str(BINARY)], env=environment(), capture_output=True, text=True).stdout
    absent = [line.split()[0] for line in libraries.splitlines() if "not found" in line]
    if absent:
        hint = " (apt-get install -y libb64-0d)" if any("libb64" in name for name in absent) else ""
        return f"{BINARY} cannot load {', '.join(absent)}{hint}"
    return None


def write_input_data(digits: Path, path: Path) -> Path:
    """perf_analyzer's --input-data: one step per test digit, its file as one BYTES element (4-byte little-endian
    length, then the bytes, in base64), shape [1]: the whole shape for DeepServe (max_batch_size 0), one row's for
    Triton (a batch dimension of its own)."""
    steps = []
    for png in sorted(digits.glob("*.png")):
        data = png.read_bytes()
        steps.append({"image": {"b64": base64.b64encode(struct.pack("<I", len(data)) + data).decode(), "shape": [1]}})
    path.write_text(json.dumps({"data": steps}))
    return path


def run(address: str, model: str, concurrency: int, seconds: float, input_data: Path) -> dict:
    """One run at `concurrency`: the keys of load.lua's done() (answers not checked: `checked` 0)."""
    window_ms = max(int(seconds * 1000 / 3), 200)
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as tmp:
        command = [str(BINARY), "-m", model, "-u", address, "-i", "http", "--input-data", str(input_data),
                   "--concurrency-range", str(concurrency), "--measurement-interval", str(window_ms),
                   "--stability-percentage", "1000", "-f", str(Path(tmp) / "out.csv")]  # fmt: skip
        done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=60 + 10 * seconds)
    out = done.stdout + done.stderr
    count, rate = re.search(r"Request count: (\d+)", out), re.search(r"Throughput: ([\d.]+) infer/sec", out)
    p50, p99 = re.search(r"p50 latency: (\d+) usec", out), re.search(r"p99 latency: (\d+) usec", out)
    if done.returncode != 0 or not (count and rate and p50 and p99):
        raise RuntimeError(f"perf_analyzer failed ({done.returncode}): {out[-2000:]}")
    requests = int(count.group(1))
    return {
        "requests": requests,
        "seconds": requests / max(float(rate.group(1)), 1e-9),
        "p50_ms": int(p50.group(1)) / 1e3,
        "p99_ms": int(p99.group(1)) / 1e3,
        "connect_errors": 0,  # perf_analyzer stops at the first failed request (nonzero exit, raised above)
        "read_errors": 0,
        "write_errors": 0,
        "status_errors": 0,
        "timeouts": 0,
        "checked": 0,
        "wrong": 0,
    }


def main() -> None:
    from bench.peers.run import DIGITS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("address", help="host:port of the server's HTTP endpoint")
    p.add_argument("-m", "--model", default="digit")
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("-d", "--seconds", type=float, default=3.0)
    p.add_argument("--digits", type=Path, default=DIGITS)
    args = p.parse_args()
    problem = missing()
    if problem:
        sys.exit(problem)
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as tmp:
        data = write_input_data(args.digits, Path(tmp) / "digits.json")
        print(json.dumps(run(args.address, args.model, args.concurrency, args.seconds, data)))


if __name__ == "__main__":
    main()
