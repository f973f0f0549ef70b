"""Shared by the load benchmarks: start the real service (uvicorn subprocess), sample its RSS, build valid inputs."""

from __future__ import annotations

import io
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]

WORDS = (
    "the a film movie plot story acting actor actress scene great good bad terrible boring wonderful love hated "
    "director script music ending character characters funny sad slow best worst moment time really just never "
    "always well beautiful awful brilliant dull predictable moving performance camera effects dialogue minutes"
).split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB (VmRSS from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """Samples a process' RSS every `interval` seconds in a thread; `peak()` since the last `reset()`."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._peak = max(self._peak, rss_mb(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self._peak = rss_mb(self.pid)

    def peak(self) -> float:
        return max(self._peak, rss_mb(self.pid))


class Service:
    """`uvicorn --factory app.http.main:create_app` on a free loopback port, configured by DEEPSERVE_* variables.

    `app_root` is the checkout whose `app` package is served (default: this one), so an older checkout can be
    measured with the same benchmark.
    """

    def __init__(self, models: Path, env: Mapping[str, str] | None = None, app_root: Path = ROOT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "DEEPSERVE_MODELS_DIR": str(Path(models).resolve()),
            "DEEPSERVE_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        command = [sys.executable, "-m", "uvicorn", "--factory", "app.http.main:create_app", "--port", str(self.port)]
        command += ["--no-access-log", "--log-level", "warning"]
        self.process = subprocess.Popen(command, cwd=app_root, env=full_env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.close()
        raise RuntimeError("uvicorn did not become ready")

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def models(self) -> dict[str, str]:
        return httpx.get(self.url + "/health/ready", timeout=10).json()["models"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def review(words: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def series(points: int, rng: random.Random) -> list[float]:
    """A taxi-like series: a daily cycle (48 half hours) around NAB nyc_taxi's mean, with noise."""
    t = np.arange(points)
    values = 15000 + 7000 * np.sin(2 * np.pi * t / 48) + np.array([rng.gauss(0, 800) for _ in range(points)])
    return [round(float(v), 1) for v in values]


def digit_png(size: int = 28, mode: str = "L", digit_box: float = 0.6) -> bytes:
    """A drawn 7 on a `size` x `size` canvas: white ink on black ("L"), or dark ink on a transparent canvas
    ("RGBA", like a drawing app's export; a 4096x4096 one is ~70 KB of PNG)."""
    transparent = mode == "RGBA"
    image = Image.new(mode, (size, size), (0, 0, 0, 0) if transparent else 0)
    draw = ImageDraw.Draw(image)
    ink = (20, 20, 20, 255) if transparent else 255
    a, b = size * (1 - digit_box) / 2, size * (1 + digit_box) / 2
    width = max(1, size // 10)
    draw.line([(a, a), (b, a), (a + (b - a) * 0.35, b)], fill=ink, width=width)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
