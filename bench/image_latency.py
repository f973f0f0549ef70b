"""POST /predict/image?model=fashion over HTTP against its floor: the same decode + preprocessing + model call
in-process, one image at a time, measured in the same run.

    python -m bench.image_latency [--seconds 10] [--levels 1,8,32] [--images 30]

Images: the first --images Fashion-MNIST test items as PNGs (Debian's dataset-fashion-mnist), else the photo in
examples/. The service is DeepServe as a user starts it (`deepserve serve`, every committed model), driven by wrk
(bench/peers/load.lua); every answer's label is checked against the label the model gives in-process, so the HTTP
path can only be fast by giving the model's own answers. Needs Debian's wrk.
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import Settings
from app.core.registry import ModelRegistry
from app.families.fashion.runtime import FashionRuntime
from app.families.images import ImageUpload
from bench.peers.run import REPO, deepserve, load_average, measure, multipart, start, stop

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
URL_PATH = "/predict/image?model=fashion"


def images(count: int) -> list[bytes]:
    if not FASHION.exists():
        return [(REPO / "examples" / "ankle_boot.jpg").read_bytes()]
    with gzip.open(FASHION) as f:
        items = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    encoded = []
    for item in items:
        out = io.BytesIO()
        Image.fromarray(item, mode="L").save(out, format="PNG")
        encoded.append(out.getvalue())
    return encoded


def floor(runtime: FashionRuntime, data: list[bytes], repeat: int) -> tuple[list[float], list[str]]:
    """Seconds per image for decode + preprocessing + model call in-process, and the model's labels."""
    uploads = [ImageUpload.read(d, 2**24) for d in data]
    labels = [runtime.predict(runtime.decode(u))[0].label for u in uploads]
    samples = []
    for i in range(repeat):
        started = time.perf_counter()
        runtime.predict(runtime.decode(uploads[i % len(uploads)]))
        samples.append(time.perf_counter() - started)
    return samples, labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=10, help="per concurrency level")
    p.add_argument("--levels", default="1,8,32", type=lambda s: [int(c) for c in s.split(",")])
    p.add_argument("--images", type=int, default=30)
    p.add_argument("--models", type=Path, default=REPO / "models")
    p.add_argument("--port", type=int, default=18432)
    args = p.parse_args()
    print(f"load average at start {load_average()}")
    registry = ModelRegistry(Settings(models_dir=args.models, models=["fashion"]))
    registry.load_all()
    runtime = registry.runtime("fashion", FashionRuntime)
    data = images(args.images)
    samples, labels = floor(runtime, data, 2000)
    with tempfile.TemporaryDirectory(prefix="image-bench-") as tmp:
        lines = []
        for i, (label, image) in enumerate(zip(labels, data, strict=True)):
            content_type, body = multipart(image, f"{i}.png")
            (Path(tmp) / f"{i}.bin").write_bytes(body)
            lines.append(f"{label}\t{content_type}\t{Path(tmp) / f'{i}.bin'}")
        manifest = Path(tmp) / "bodies.txt"
        manifest.write_text("\n".join(lines) + "\n")
        server = deepserve("DeepServe", args.port, args.models.resolve())
        process, ready = start(server, args.port, 120, Path(tmp) / "server.log")
        try:
            url = f"http://127.0.0.1:{args.port}{URL_PATH}"
            rows = [measure(process.pid, url, c, args.seconds, manifest, "label") for c in args.levels]
        finally:
            stop(process)
    p50 = statistics.median(samples)
    print(f"\n{len(data)} images, server ready in {ready:.1f} s; the floor is one thread, no HTTP\n")
    print(f"{'':42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'correct':>8} {'server CPU ms/req':>18}")
    floor_p99 = float(np.percentile(samples, 99)) * 1e3
    print(f"{'in-process decode+preprocess+model (floor)':42} {1 / p50:8.0f} {p50 * 1e3:8.3f} {floor_p99:8.3f}")
    for row in rows:
        correct = f"{100 * row['correct']:.1f}%" if row["correct"] is not None else "-"
        name = f"HTTP {URL_PATH}, c={row['concurrency']}"
        print(
            f"{name:42} {row['rps']:8.0f} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} {correct:>8} "
            f"{row['server_cpu_ms_per_request']:18.2f}"
        )
    if any(row["errors"] for row in rows):
        sys.exit("errors: " + ", ".join(f"c={r['concurrency']}: {r['errors']}" for r in rows))


if __name__ == "__main__":
    main()
