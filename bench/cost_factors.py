"""Measure the working memory of one request, per unit of its size: where each `Runtime.cost`'s factors come from.

    python -m bench.cost_factors [--models models] [--family digit anomaly nearest_context lstm image distilbert]

For each family and input size, a fresh Python process loads the model from --models (as the service does:
load + warm-up), notes its RSS, resets the peak (`echo 5 > /proc/self/clear_refs`), runs ONE request through the
service's own code path (the runtime's decode + predict, what runs inside the request's admission slot),
and reports the peak RSS growth (VmHWM - VmRSS before) and what stays resident after it. A fresh process per
size, so memory one size left behind (allocator arenas, ONNX Runtime's arena) does not hide the next one's.
The growth divided by the size's units (pixels, text tokens, anomaly windows x window, series points) is the
factor; the estimate the runtime's `cost` makes for the same input is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from bench.service import ROOT, digit_png, review, series

SIZES = {
    "digit": [512, 1024, 2048, 4096],
    "image": [512, 1024, 2048, 4096],
    "lstm": [(1, 640), (8, 640), (32, 100), (32, 300), (32, 640)],
    "distilbert": [(1, 640), (8, 64), (8, 640), (32, 30), (32, 100), (32, 640)],
    "anomaly": [336, 1000, 5000, 20000],
    "nearest_context": [200, 1000, 5000, 20000],
}


def status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def child(models: Path, family: str, size: str, mode: str) -> None:
    from app.config import Settings
    from app.families import open_runtime
    from app.manifest import read_manifest

    settings = Settings(models_dir=models)
    runtime = open_runtime(read_manifest(models).served()[family], settings)
    runtime.warmup()
    rng = random.Random(0)
    request: object
    if family in ("digit", "image", "fashion"):
        from app.families.images import ImageUpload

        data = digit_png(int(size), mode if mode in ("L", "RGBA") else "L")
        if mode not in ("L", "RGBA"):  # the same drawing converted: RGB, I;16 (PNG), F (TIFF), ...
            import io

            from PIL import Image

            out = io.BytesIO()
            Image.open(io.BytesIO(data)).convert(mode).save(out, format="TIFF" if mode == "F" else "PNG")
            data = out.getvalue()
        request = ImageUpload.read(data, settings.max_image_pixels)
    elif family in ("anomaly", "nearest_context"):
        from app.families.anomaly.schemas import AnomalyRequest

        method = "autoencoder" if family == "anomaly" else "nearest_context"
        request = AnomalyRequest(values=series(int(size), rng), method=method)
    else:
        n, words = (int(v) for v in size.split("x"))
        request = [review(words, rng) for _ in range(n)]

    def work():  # what the service does inside the request's admission slot
        return runtime.predict(runtime.decode(request))

    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    work()
    peak = status("VmHWM")
    estimate = runtime.cost(request) / 2**20
    after = status("VmRSS") - before
    print(json.dumps({"before": before, "growth": peak - before, "after": after, "estimate": estimate}))


def units(family: str, size) -> tuple[float, str]:
    if family in ("digit", "image"):
        return size * size, "pixel"
    if family == "anomaly":
        return (size - 336 + 1) * 336, "window float"
    if family == "nearest_context":
        return size, "point"
    n, words = size
    return n * words, "word"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--family", nargs="*", default=["digit", "anomaly", "lstm"])
    parser.add_argument("--mode", default="RGBA", help="image mode of the test PNGs")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.models.resolve(), args.child[0], args.child[1], args.mode)
        return
    print(f"{'family':<10} {'size':<10} {'peak growth':>12} {'kept after':>11} {'bytes/unit':>11} {'estimate':>11}")
    for family in args.family:
        for size in SIZES[family]:
            label = f"{size[0]}x{size[1]}" if isinstance(size, tuple) else str(size)
            command = [sys.executable, "-m", "bench.cost_factors", "--models", str(args.models), "--mode", args.mode]
            out = subprocess.run([*command, "--child", family, label], cwd=ROOT, capture_output=True, text=True)
            if out.returncode:
                print(f"{family:<10} {label:<10} failed: {out.stderr.strip()[-300:]}")
                continue
            m = json.loads(out.stdout.strip().splitlines()[-1])
            count, unit = units(family, size)
            per = m["growth"] * 2**20 / count
            print(
                f"{family:<10} {label:<10} {m['growth']:>9.1f} MB {m['after']:>8.1f} MB {per:>8.1f} B/{unit} "
                f"{m['estimate']:>8.1f} MB"
            )


if __name__ == "__main__":
    main()
