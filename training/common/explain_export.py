"""The explanation export of an image classifier: what the service's heatmaps need, without Keras at serving time.

    python -m training.common.explain_export models/digit/1    # add it to an artifact from its model.keras

When every layer is one the numpy head runs (the digit and fashion CNNs), writes explain_head.npz: the whole
network's layers, weights and a JSON spec, so the service computes the gradient of the class's score with respect
to the input exactly in numpy and answers gradient x input (app/families/saliency.py). Measured on MNIST and
Fashion-MNIST (bench/explain_methods.py), it is the map that lies on the ink and that deletion shows faithful;
Grad-CAM at 11x11 put 19% of its mass on the digit's ink, and at Fashion's 7x7 failed the deletion test.

Otherwise (the transfer model's nested MobileNetV2), Grad-CAM: explain.onnx, the same network with the Grad-CAM
layer's activations as a second output, and explain_head.npz, every layer after it and where each of its cells
sits on the model's input. The Grad-CAM layer is the deepest convolutional output at least MIN_CELLS cells on a
side, else the last one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.families.saliency import GRAD_CAM, GRADIENT_X_INPUT, Head
from app.manifest import ManifestEntry
from training.common.export import OnnxModel

MIN_CELLS = 7  # the Grad-CAM layer's smallest side, in activation cells, when the network has one that large
ONNX_FILE, HEAD_FILE = "explain.onnx", "explain_head.npz"


def _is_4d(layer) -> bool:
    return len(_output(layer).shape) == 4


def _output(layer):
    """The layer's output in the outer model's graph (a nested model's own `output` is its inner graph's)."""
    return layer._inbound_nodes[-1].output_tensors[0]


def gradcam_index(model) -> int:
    """Index in model.layers of the layer whose activations Grad-CAM weighs."""
    import keras

    first = next(
        (i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Conv2D | keras.Model)), None
    )
    if first is None:
        raise ValueError(f"{model.name} has no convolution: Grad-CAM needs a spatial layer")
    spatial = [i for i in range(first, len(model.layers)) if _is_4d(model.layers[i])]
    large = [i for i in spatial if min(_output(model.layers[i]).shape[1:3]) >= MIN_CELLS]
    return (large or spatial)[-1]


def _activation(layer) -> str:
    name = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if name not in ("relu", "linear", "softmax"):
        raise ValueError(f"layer {layer.name}: activation {name} is not supported by the numpy head")
    return name


def head_spec(model, index: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The layers after model.layers[index] as Head's spec and weights."""
    import keras
    from keras import layers as L

    spec: list[dict] = []
    weights: dict[str, np.ndarray] = {}
    for layer in model.layers[index + 1 :]:
        n = len(spec)
        if isinstance(layer, L.Dropout):
            continue
        if isinstance(layer, L.Conv2D) and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1):
            spec.append({"kind": "conv", "padding": layer.padding, "activation": _activation(layer)})
            weights[f"{n}/kernel"] = np.asarray(layer.kernel)
            if layer.use_bias:
                weights[f"{n}/bias"] = np.asarray(layer.bias)
        elif isinstance(layer, L.MaxPooling2D) and layer.padding == "valid":
            if tuple(layer.pool_size) != tuple(layer.strides):
                raise ValueError(f"layer {layer.name}: only pooling with stride = pool size is supported")
            spec.append({"kind": "maxpool", "size": list(layer.pool_size)})
        elif isinstance(layer, L.BatchNormalization):
            scale = np.asarray(layer.gamma) / np.sqrt(np.asarray(layer.moving_variance) + layer.epsilon)
            spec.append({"kind": "affine"})
            weights[f"{n}/scale"] = scale
            weights[f"{n}/offset"] = np.asarray(layer.beta) - np.asarray(layer.moving_mean) * scale
        elif isinstance(layer, L.Activation | L.ReLU):
            if isinstance(layer, L.ReLU) or _activation(layer) == "relu":
                spec.append({"kind": "relu"})
        elif isinstance(layer, L.Flatten):
            spec.append({"kind": "flatten"})
        elif isinstance(layer, L.GlobalAveragePooling2D) and not layer.keepdims:
            spec.append({"kind": "gap"})
        elif isinstance(layer, L.Dense):
            spec.append({"kind": "dense", "activation": _activation(layer)})
            weights[f"{n}/kernel"] = np.asarray(layer.kernel)
            weights[f"{n}/bias"] = np.asarray(layer.bias) if layer.use_bias else np.zeros(layer.units, np.float32)
        elif isinstance(layer, keras.layers.InputLayer):
            continue
        else:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) is not supported by the numpy head")
    if not spec or spec[-1] != {"kind": "dense", "activation": "softmax"}:
        raise ValueError("the network must end in a softmax Dense layer")
    return spec, {k: v.astype(np.float32) for k, v in weights.items()}


def input_grid(model, index: int) -> tuple[list[float], list[float]]:
    """(scale, offset) per axis: activation cell i of the Grad-CAM layer is centred on input pixel scale * i +
    offset. Walked through plain convs and poolings; a nested network (MobileNetV2) is taken as centre-aligned."""
    import keras
    from keras import layers as L

    height, width = model.inputs[0].shape[1:3]
    scale, offset = [1.0, 1.0], [0.0, 0.0]
    for layer in model.layers[: index + 1]:
        if isinstance(layer, L.Conv2D) and tuple(layer.strides) == (1, 1):
            if layer.padding == "valid":
                offset = [o + (k - 1) / 2 * s for o, k, s in zip(offset, layer.kernel_size, scale, strict=True)]
        elif isinstance(layer, L.MaxPooling2D) and layer.padding == "valid":
            offset = [o + (p - 1) / 2 * s for o, p, s in zip(offset, layer.pool_size, scale, strict=True)]
            scale = [s * st for s, st in zip(scale, layer.strides, strict=True)]
        elif isinstance(layer, keras.Model | L.Conv2D | L.MaxPooling2D):
            cells = _output(layer).shape[1:3]
            scale = [size / c for size, c in zip((height, width), cells, strict=True)]
            offset = [(s - 1) / 2 for s in scale]
    return scale, offset


def write_head(out: Path, spec: list[dict], weights: dict[str, np.ndarray], **meta) -> None:
    """explain_head.npz: the layers' spec and `meta` (layer, scale, offset, method) as JSON beside the weights."""
    np.savez(out / HEAD_FILE, spec=np.array(json.dumps({"layers": spec, **meta})), **weights)


def export_explain(model, out: Path, sample: np.ndarray) -> dict[str, str]:
    """Write the explanation export into the artifact folder `out` (gradient x input when the numpy head runs the
    whole network, else Grad-CAM) and check, on `sample` (a batch of inputs), that the numpy head reproduces the
    network's probabilities; returns the files by role."""
    import keras

    try:
        spec, weights = head_spec(model, -1)
    except ValueError:  # a layer the numpy head does not run: Grad-CAM after it
        pass
    else:
        write_head(out, spec, weights, layer="input", scale=[1.0, 1.0], offset=[0.0, 0.0], method=GRADIENT_X_INPUT)
        check(out, sample)
        return {"explain_head": HEAD_FILE}
    index = gradcam_index(model)
    spec, weights = head_spec(model, index)
    scale, offset = input_grid(model, index)
    explainer = keras.Model(model.inputs, [_output(model.layers[index]), model.outputs[0]], name="explain")
    explainer(sample[:1].astype(np.float32))  # the ONNX export traces a model that has been called
    explainer.export(str(out / ONNX_FILE), format="onnx", verbose=False)
    write_head(out, spec, weights, layer=model.layers[index].name, scale=scale, offset=offset, method=GRAD_CAM)
    check(out, sample)
    return {"explain_onnx": ONNX_FILE, "explain_head": HEAD_FILE}


def check(out: Path, sample: np.ndarray) -> float:
    """Largest difference between model.onnx's probabilities on `sample`, the numpy head's and (Grad-CAM)
    explain.onnx's; raises when it is over 1e-4 (the export does not compute what the served model does)."""
    head = Head.load(out / HEAD_FILE)
    served = OnnxModel(out / "model.onnx")(sample.astype(np.float32))
    activations, probabilities = sample.astype(np.float32), served
    if head.method == GRAD_CAM:
        session = OnnxModel(out / ONNX_FILE).session
        activations, probabilities = session.run(None, {session.get_inputs()[0].name: sample.astype(np.float32)})
    numpy_probs = np.stack([head.forward(a)[1] for a in activations])
    diff = float(max(np.abs(probabilities - served).max(), np.abs(numpy_probs - served).max()))
    if diff > 1e-4:
        raise ValueError(f"the explanation export differs from model.onnx by {diff:.2g} in probability")
    return diff


def add_to_artifact(folder: Path, sample: np.ndarray) -> dict[str, str]:
    """Export from folder/model.keras (same weights) and list the files in folder/model.json."""
    import keras

    entry = ManifestEntry.model_validate_json((folder / "model.json").read_text())
    files = export_explain(keras.models.load_model(folder / "model.keras"), folder, sample)
    replace_files(folder, entry, files)
    (folder / "model.json").write_text(json.dumps(entry.model_dump(), indent=2) + "\n")
    return files


def replace_files(folder: Path, entry: ManifestEntry, files: dict[str, str]) -> None:
    """List the explanation `files` in entry (model.json's) and drop an explain.onnx the new export does not use."""
    if "explain_onnx" not in files and "explain_onnx" in entry.files:
        (folder / entry.files.pop("explain_onnx")).unlink(missing_ok=True)
    entry.files.update(files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path, help="an artifact folder with model.keras and model.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs the export is checked on")
    args = parser.parse_args(argv)
    shape = OnnxModel(args.artifact / "model.onnx").session.get_inputs()[0].shape[1:]
    sample = np.random.default_rng(args.seed).uniform(0, 1, (16, *shape)).astype(np.float32)
    print(add_to_artifact(args.artifact, sample))


if __name__ == "__main__":
    main()
