"""The explanation export of an artifact that kept only its ONNX model (no model.keras), read from model.onnx
itself: the whole network as the numpy head of gradient x input (explain_head.npz; app/families/saliency.py).
Refuses a graph that is not the plain chain it understands (stride-1 convolutions + ReLU, max pooling, flatten,
dense + ReLU, dense + softmax: a Keras CNN exported by tf2onnx, batch norm folded into the convolutions); the
numpy head is then checked against model.onnx like every export.

    python -m training.common.explain_from_onnx models/fashion/1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.families.saliency import GRADIENT_X_INPUT
from app.manifest import ManifestEntry
from training.common.explain_export import HEAD_FILE, check, replace_files, write_head


def _attribute(node, name: str, default=None):
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _padding(node, kernel: tuple[int, int]) -> str:
    """'valid' or 'same' (TensorFlow's: the extra row and column after), from the node's pads; else refuses."""
    pads = list(_attribute(node, "pads", [0, 0, 0, 0]))
    same = [(kernel[0] - 1) // 2, (kernel[1] - 1) // 2, kernel[0] // 2, kernel[1] // 2]
    auto = _attribute(node, "auto_pad", b"NOTSET")
    if auto == b"SAME_UPPER" or (auto == b"NOTSET" and pads == same and any(pads)):
        return "same"
    if auto in (b"VALID", b"NOTSET") and not any(pads):
        return "valid"
    raise ValueError(f"convolution padding {pads} ({auto!r}) is neither 'valid' nor 'same'")


def head_from_onnx(model) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The whole network of an ONNX CNN (NCHW inside, NHWC input) as the numpy head's spec and weights (NHWC)."""
    from onnx import numpy_helper

    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    spec: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    tensor = graph.input[0].name
    while True:
        following = [n for n in consumers.get(tensor, []) if n.op_type != "Shape"]
        if len(following) != 1:
            raise ValueError(f"{tensor} feeds {len(following)} nodes: not a plain chain")
        node = following[0]
        n = len(spec)
        after = [a for a in consumers.get(node.output[0], []) if a.op_type != "Shape"]
        if node.op_type in ("Reshape", "Transpose") and not any(s["kind"] == "flatten" for s in spec):
            # NHWC <-> NCHW around the convolutions (the numpy head stays NHWC), or the flatten before the dense.
            if node.op_type == "Reshape" and spec:
                spec.append({"kind": "flatten"})
        elif node.op_type == "Conv":
            if set(_attribute(node, "strides", [1, 1])) != {1} or set(_attribute(node, "dilations", [1, 1])) != {1}:
                raise ValueError("only stride-1, undilated convolutions")
            if _attribute(node, "group", 1) != 1:
                raise ValueError("only ungrouped convolutions")
            kernel = weights[node.input[1]].transpose(2, 3, 1, 0)  # OIHW -> HWIO, as Keras keeps it
            relu = len(after) == 1 and after[0].op_type == "Relu"
            activation = "relu" if relu else "linear"
            spec.append({"kind": "conv", "padding": _padding(node, kernel.shape[:2]), "activation": activation})
            arrays[f"{n}/kernel"] = kernel.astype(np.float32)
            if len(node.input) > 2:
                arrays[f"{n}/bias"] = weights[node.input[2]].astype(np.float32)
            node = after[0] if relu else node
        elif node.op_type == "MaxPool":
            size = list(_attribute(node, "kernel_shape"))
            if list(_attribute(node, "strides")) != size or any(_attribute(node, "pads", [0])):
                raise ValueError("only max pooling with stride = size and no padding")
            spec.append({"kind": "maxpool", "size": size})
        elif node.op_type == "MatMul":
            add = after[0]
            then = consumers.get(add.output[0], [])
            activation = then[0].op_type.lower() if then and then[0].op_type in ("Relu", "Softmax") else "linear"
            spec.append({"kind": "dense", "activation": activation})
            arrays[f"{n}/kernel"] = weights[node.input[1]].astype(np.float32)
            arrays[f"{n}/bias"] = weights[add.input[1]].astype(np.float32)
            node = then[0] if activation != "linear" else add
            if activation == "softmax":
                return spec, arrays
        else:
            raise ValueError(f"{node.op_type} is not supported by the numpy head")
        tensor = node.output[0]


def build(folder: Path) -> dict[str, str]:
    """Write folder/explain_head.npz from folder/model.onnx; returns the files by role."""
    import onnx

    spec, arrays = head_from_onnx(onnx.load(str(folder / "model.onnx")))
    write_head(folder, spec, arrays, layer="input", scale=[1.0, 1.0], offset=[0.0, 0.0], method=GRADIENT_X_INPUT)
    return {"explain_head": HEAD_FILE}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path, help="an artifact folder with model.onnx and model.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs the export is checked on")
    args = parser.parse_args(argv)
    files = build(args.artifact)
    import onnxruntime as ort

    shape = ort.InferenceSession(str(args.artifact / "model.onnx")).get_inputs()[0].shape[1:]
    check(args.artifact, np.random.default_rng(args.seed).uniform(0, 1, (16, *shape)).astype(np.float32))
    entry = ManifestEntry.model_validate_json((args.artifact / "model.json").read_text())
    replace_files(args.artifact, entry, files)
    (args.artifact / "model.json").write_text(json.dumps(entry.model_dump(), indent=2) + "\n")
    print(files)


if __name__ == "__main__":
    main()
