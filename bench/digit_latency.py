"""Digit model latency: ONNX Runtime (what the service runs) against Keras, and end to end over HTTP.

    python -m bench.digit_latency [--models models] [--requests 300]

Prints a table; ratios are against Keras `model.predict`, measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_latencies(models: Path, requests: int, concurrency: int) -> dict[str, list[float] | float]:
    from tests.support.digit_images import render

    port = free_port()
    env = {**os.environ, "DEEPSERVE_MODELS_DIR": str(models), "DEEPSERVE_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.http.main:create_app", "--port", str(port)]
    server = subprocess.Popen([*command, "--no-access-log", "--log-level", "warning"], env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)

            def one(data: bytes) -> float:
                started = time.perf_counter()
                response = client.post("/predict/digit", content=data, headers={"content-type": "image/png"})
                assert response.status_code == 200 and response.json()["digit"] == 7, response.text
                return time.perf_counter() - started

            results: dict[str, list[float] | float] = {}
            for kind in ("mnist_28", "noisy_photo_jpeg"):
                data = render(7, kind)
                results[kind] = [one(data) for _ in range(requests)]
            data = render(7, "mnist_28")
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda _: one(data), range(requests)))
            results["throughput"] = requests / (time.perf_counter() - started)
        return results
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()

    import keras
    import onnxruntime as ort
    import tensorflow as tf

    folder = args.models / "digit" / "1"
    x = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
    model = keras.models.load_model(folder / "model.keras")
    compiled = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = {
        "keras model.predict (baseline)": timed(lambda: model.predict(x, verbose=0), 50),
        "keras model(x) eager": timed(lambda: model(x, training=False), 200),
        "keras tf.function": timed(lambda: compiled(x), 500),
        "onnxruntime session.run": timed(lambda: session.run(None, {name: x}), 2000),
    }
    http = http_latencies(args.models, args.requests, args.concurrency)
    rows["HTTP POST /predict/digit, 28x28 PNG"] = http["mnist_28"]
    rows["HTTP POST /predict/digit, 640x480 noisy JPEG"] = http["noisy_photo_jpeg"]
    baseline = statistics.median(rows["keras model.predict (baseline)"])
    print(f"\n{'one 28x28 image':48} {'p50 ms':>9} {'p95 ms':>9} {'speed-up vs baseline':>21}")
    for label, samples in rows.items():
        p50, p95 = statistics.median(samples), float(np.percentile(samples, 95))
        print(f"{label:48} {p50 * 1e3:9.3f} {p95 * 1e3:9.3f} {baseline / p50:20.1f}x")
    throughput = http["throughput"]
    print(f"\nHTTP throughput at concurrency {args.concurrency}, 28x28 PNG: {throughput:.0f} requests/s")


if __name__ == "__main__":
    main()
