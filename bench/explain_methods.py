"""Which heatmap for the digit and fashion CNNs: each candidate method on the real test sets, with the committed models.

    python -m bench.explain_methods [--n 2000] [--mnist ../shared/data/mnist/mnist.npz]
                                    [--fashion /usr/share/datasets/fashion-mnist]

For each candidate, computed exactly in numpy from the artifact's whole-network head (explain_head.npz):
  - ink: mean share of the map's mass on the ink (preprocessed pixel > 0.5 x the image's brightest), and within
    1 pixel of it (8-connected);
  - deletion: the predicted class's mean probability (model.onnx) after setting the map's top 20% pixels to 0,
    against 20% random pixels; and the same among the ink pixels only (does the map rank the strokes?);
  - ms: median time of one map, forward and backward in numpy (one image, one thread).
Then the served explanation's in-process latency (decode, ONNX, the map, the overlay, the JSON fields) on
examples/digit.png. The service answers gradient x input (app/families/saliency.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.config import Settings
from app.core.registry import ModelRegistry
from app.families.images import ImageUpload
from app.families.saliency import Head, Layer, interpolation

ROOT = Path(__file__).resolve().parents[1]
FRACTION = 0.2


def passes(layers: list[Layer], x: np.ndarray, target: int | None, guided: bool = False):
    """(target, each layer's output, the gradient of the target's logit with respect to each layer's output, and
    with respect to the input); `guided`: guided backpropagation (only positive gradients pass a ReLU)."""
    outputs, saved, a = [], [], x
    for layer in layers:
        state: dict = {}
        a = layer.forward(a, state)
        outputs.append(a)
        saved.append(state)
    target = int(a.argmax()) if target is None else target
    g = np.zeros_like(a)
    g[target] = 1.0
    grads: list[np.ndarray] = [g] * len(layers)
    for i in reversed(range(len(layers))):
        grads[i] = g
        if guided and layers[i].params.get("activation") == "relu":
            g = g * (g > 0)
        g = layers[i].backward(g, saved[i])
    return target, outputs, grads, g


def grids(layers: list[Layer]) -> dict[int, tuple[float, float]]:
    """(scale, offset) of each conv layer's cells on the input, as explain_export.input_grid walks them."""
    scale, offset, out = 1.0, 0.0, {}
    for i, layer in enumerate(layers):
        if layer.kind == "conv":
            if layer.params["padding"] == "valid":
                offset += (layer.weights["kernel"].shape[0] - 1) / 2 * scale
            out[i] = (scale, offset)
        elif layer.kind == "maxpool":
            size = layer.params["size"][0]
            offset, scale = offset + (size - 1) / 2 * scale, scale * size
    return out


def candidates(head: Head, side: int) -> dict[str, Callable[[np.ndarray], tuple[int, np.ndarray]]]:
    """Name -> function of one input (side, side, 1) giving (explained class, map over the input)."""
    layers, convs = head.layers, grids(head.layers)
    _, outputs, _, _ = passes(layers, np.zeros((side, side, 1), np.float32), None)

    def gradcam(i: int, outputs, grads) -> np.ndarray:
        a, g = outputs[i], grads[i]
        cam = np.maximum((a * g.mean(axis=(0, 1))).sum(axis=-1), 0)
        scale, offset = convs[i]
        rows = interpolation(np.arange(side), cam.shape[0], scale, offset)
        return rows @ cam @ rows.T

    methods: dict[str, Callable[[np.ndarray], tuple[int, np.ndarray]]] = {}
    for n, i in enumerate(convs):

        def plain(x: np.ndarray, i: int = i) -> tuple[int, np.ndarray]:
            target, outputs, grads, _ = passes(layers, x, None)
            return target, gradcam(i, outputs, grads)

        def times_input(x: np.ndarray, i: int = i) -> tuple[int, np.ndarray]:
            target, outputs, grads, _ = passes(layers, x, None)
            return target, gradcam(i, outputs, grads) * x[..., 0]

        def guided(x: np.ndarray, i: int = i) -> tuple[int, np.ndarray]:
            target, outputs, grads, _ = passes(layers, x, None)
            _, _, _, g = passes(layers, x, target, guided=True)
            return target, gradcam(i, outputs, grads) * np.maximum(g[..., 0], 0)

        methods[f"grad-cam conv{n + 1} ({outputs[i].shape[0]}x{outputs[i].shape[1]})"] = plain
        methods[f"grad-cam conv{n + 1} x input"] = times_input
        methods[f"guided grad-cam conv{n + 1}"] = guided

    def gradient_x_input(x: np.ndarray) -> tuple[int, np.ndarray]:
        target = int(head.forward(x)[0].argmax())
        return target, head.saliency(x, target)

    methods["gradient x input (served)"] = gradient_x_input
    return methods


def grow(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    rows, cols = mask.shape
    return np.any([padded[1 + dy : 1 + dy + rows, 1 + dx : 1 + dx + cols] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 0)


def evaluate(name: str, models: Path, x: np.ndarray) -> None:
    registry = ModelRegistry(Settings(models_dir=models, models=[name]))
    registry.load_all()
    runtime = registry.runtime(name)
    head = Head.load(runtime.file("explain_head"))
    if head.method != "gradient-x-input":
        raise SystemExit(f"{name}: explain_head.npz does not hold the whole network")
    import onnxruntime as ort

    session = ort.InferenceSession(str(runtime.file("onnx")))
    feed = session.get_inputs()[0].name

    def probability(images: np.ndarray, targets: np.ndarray) -> float:
        return float(session.run(None, {feed: images})[0][np.arange(len(images)), targets].mean())

    side, pixels = x.shape[1], x.shape[1] * x.shape[2]
    ink = x[..., 0] > 0.5 * x[..., 0].max(axis=(1, 2), keepdims=True)
    near = np.stack([grow(m) for m in ink])
    rng = np.random.default_rng(0)
    random_all, random_ink = x.copy(), x.copy()
    for i in range(len(x)):
        random_all[i].reshape(pixels)[rng.choice(pixels, int(FRACTION * pixels), replace=False)] = 0
        idx = np.flatnonzero(ink[i])
        random_ink[i].reshape(pixels)[rng.choice(idx, int(FRACTION * len(idx)), replace=False)] = 0
    print(f"\n{name}: {len(x)} test images; ink {ink.mean():.1%} of pixels, within 1 px {near.mean():.1%}")
    print("| method | mass on ink | within 1 px | top 20% hidden | random 20% | top 20% of ink | random of ink | ms |")
    print("|---|---|---|---|---|---|---|---|")
    for method, compute in candidates(head, side).items():
        results = [compute(image) for image in x]
        targets = np.array([t for t, _ in results])
        maps = np.stack([m for _, m in results])
        mass = maps.sum(axis=(1, 2)) + 1e-12
        on_ink = float(((maps * ink).sum(axis=(1, 2)) / mass).mean())
        within = float(((maps * near).sum(axis=(1, 2)) / mass).mean())
        top_all, top_ink = x.copy(), x.copy()
        for i, heat in enumerate(maps):
            top_all[i].reshape(pixels)[np.argsort(-heat.ravel(), kind="stable")[: int(FRACTION * pixels)]] = 0
            idx = np.flatnonzero(ink[i])
            ranked = idx[np.argsort(-heat.ravel()[idx], kind="stable")]
            top_ink[i].reshape(pixels)[ranked[: int(FRACTION * len(idx))]] = 0
        times = []
        for image in x[:100]:
            started = time.perf_counter()
            compute(image)
            times.append(time.perf_counter() - started)
        print(
            f"| {method} | {on_ink:.1%} | {within:.1%} | {probability(top_all, targets):.3f} | "
            f"{probability(random_all, targets):.3f} | {probability(top_ink, targets):.3f} | "
            f"{probability(random_ink, targets):.3f} | {1000 * statistics.median(times):.1f} |"
        )


def served_latency(models: Path, repeat: int = 200) -> None:
    """Median and p95 of one /explain/digit's work in-process (no HTTP): decode, predict, encode."""
    from app.families.explain_images import DigitExplainer, ExplainRequest, explainer_for

    registry = ModelRegistry(Settings(models_dir=models, models=["digit"]))
    registry.load_all()
    explainer = explainer_for(registry.runtime("digit"), DigitExplainer)  # type: ignore[arg-type]
    request = ExplainRequest(ImageUpload.read((ROOT / "examples" / "digit.png").read_bytes(), 10**8), None)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        explainer.encode(request, explainer.predict(explainer.decode(request)))
        times.append(time.perf_counter() - started)
    times.sort()
    p50, p95 = 1000 * statistics.median(times), 1000 * times[int(0.95 * len(times))]
    print(f"\n/explain/digit in-process on examples/digit.png ({repeat} calls): p50 {p50:.1f} ms, p95 {p95:.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="test images per data set (the first n)")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist" / "mnist.npz")
    parser.add_argument("--fashion", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    args = parser.parse_args(argv)
    from training.common.mnist_data import load_mnist

    for name, data in (("digit", args.mnist), ("fashion", args.fashion)):
        if not data.exists():
            print(f"\n{name}: {data} is absent, skipped")
            continue
        _, (x_test, _) = load_mnist(data)
        evaluate(name, args.models, (x_test[: args.n] / 255.0).astype(np.float32)[..., None])
    served_latency(args.models)


if __name__ == "__main__":
    main()
