"""The digit runtime's answers on a fixed set of images, saved from one commit and compared in another: a speed
change to decoding, preprocessing or the model call must leave them as they were.

    python -m bench.digit_outputs save /tmp/digit-before.npz     # in the old checkout
    python -m bench.digit_outputs compare /tmp/digit-before.npz  # in the new one

The images: the 10,000 MNIST test digits as PNGs (../shared/data/mnist/mnist.npz), the 30 peers PNGs, and every
digit in every input kind of tests/support/digit_images.py (photos, JPEG, canvases, transparency...). Saved per
image: the model input (28x28) and the ten probabilities, through the runtime's own decode and predict.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import Settings
from app.core.registry import ModelRegistry
from app.families.digit.runtime import DigitRuntime
from app.families.images import ImageUpload
from bench.peers.run import DIGITS, REPO
from tests.support.digit_images import KINDS, render

MNIST = REPO.parent / "shared" / "data" / "mnist" / "mnist.npz"


def images() -> tuple[list[bytes], list[int]]:
    datas, labels = [], []
    with np.load(MNIST) as mnist:
        for image, label in zip(mnist["x_test"], mnist["y_test"], strict=True):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            datas.append(buffer.getvalue())
            labels.append(int(label))
    for png in sorted(DIGITS.glob("*.png")):
        datas.append(png.read_bytes())
        labels.append(int(png.name.split("_")[0]))
    for kind in KINDS:
        for digit in range(10):
            datas.append(render(digit, kind))
            labels.append(digit)
    return datas, labels


def outputs(models: Path) -> dict[str, np.ndarray]:
    settings = Settings(models_dir=models, models=["digit"])
    registry = ModelRegistry(settings)
    registry.load_all()
    runtime = registry.runtime("digit", DigitRuntime)
    datas, labels = images()
    inputs, probabilities = [], []
    for data in datas:
        [x] = runtime.decode(ImageUpload.read(data, settings.max_image_pixels))
        [out] = runtime.predict([x])
        inputs.append(x)
        probabilities.append(out.probabilities)
    return {"inputs": np.stack(inputs), "probabilities": np.array(probabilities), "labels": np.array(labels)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["save", "compare"])
    p.add_argument("file", type=Path)
    p.add_argument("--models", type=Path, default=REPO / "models")
    args = p.parse_args()
    now = outputs(args.models)
    right = float((now["probabilities"].argmax(axis=1) == now["labels"]).mean())
    print(f"{len(now['labels'])} images, {100 * right:.2f}% read right")
    if args.action == "save":
        np.savez_compressed(args.file, **now)
        return
    with np.load(args.file) as before:
        same_digit = int((before["probabilities"].argmax(axis=1) == now["probabilities"].argmax(axis=1)).sum())
        print(f"same digit: {same_digit}/{len(now['labels'])}")
        print(f"largest input difference: {np.abs(before['inputs'] - now['inputs']).max():.2e}")
        print(f"largest probability difference: {np.abs(before['probabilities'] - now['probabilities']).max():.2e}")


if __name__ == "__main__":
    main()
