"""The explanation export of an artifact that kept only its ONNX model (no model.keras), built from model.onnx
itself: the same graph with the last convolution's activations (after its ReLU, NHWC) as a second output, and the
layers after it read from the graph into explain_head.npz. Refuses a graph whose head is not the plain chain it
understands (max pooling, flatten, dense + ReLU, dense + softmax); the numpy head is then checked against
model.onnx like every export.

    python -m training.common.explain_from_onnx models/fashion/1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.manifest import ManifestEntry
from training.common.explain_export import HEAD_FILE, ONNX_FILE, check


def _attribute(node, name: str, default=None):
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def build(folder: Path) -> dict[str, str]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(folder / "model.onnx"))
    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    last_conv = [n for n in graph.node if n.op_type == "Conv"][-1]
    [relu] = consumers[last_conv.output[0]]
    if relu.op_type != "Relu":
        raise ValueError("the last convolution is not followed by a ReLU")
    # Where each activation cell sits on the input: walk the convolutions and poolings before it.
    scale, offset = 1.0, 0.0
    for node in graph.node:
        if node.op_type == "Conv":
            k, pads = _attribute(node, "kernel_shape")[0], _attribute(node, "pads", [0, 0, 0, 0])[0]
            offset += ((k - 1) / 2 - pads) * scale
        elif node.op_type == "MaxPool":
            k = _attribute(node, "kernel_shape")[0]
            offset, scale = offset + (k - 1) / 2 * scale, scale * _attribute(node, "strides")[0]
        if node is last_conv:
            break
    spec: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    tensor = relu.output[0]
    while True:
        following = [n for n in consumers.get(tensor, []) if n.op_type != "Shape"]
        if len(following) != 1:
            raise ValueError(f"{tensor} feeds {len(following)} nodes: not a plain head")
        node = following[0]
        n = len(spec)
        if node.op_type == "MaxPool":
            size = list(_attribute(node, "kernel_shape"))
            if list(_attribute(node, "strides")) != size or any(_attribute(node, "pads", [0])):
                raise ValueError("only max pooling with stride = size and no padding")
            spec.append({"kind": "maxpool", "size": size})
        elif node.op_type == "Transpose" and list(_attribute(node, "perm")) == [0, 2, 3, 1]:
            pass  # to NHWC, which the numpy head already is
        elif node.op_type == "Reshape":
            spec.append({"kind": "flatten"})
        elif node.op_type == "MatMul":
            add = consumers[node.output[0]][0]
            after = consumers.get(add.output[0], [])
            activation = after[0].op_type.lower() if after and after[0].op_type in ("Relu", "Softmax") else "linear"
            spec.append({"kind": "dense", "activation": activation})
            arrays[f"{n}/kernel"] = weights[node.input[1]].astype(np.float32)
            arrays[f"{n}/bias"] = weights[add.input[1]].astype(np.float32)
            node = after[0] if activation != "linear" else add
            if activation == "softmax":
                break
        else:
            raise ValueError(f"{node.op_type} in the head is not supported")
        tensor = node.output[0]
    nhwc = onnx.helper.make_node("Transpose", [relu.output[0]], ["gradcam_activations"], perm=[0, 2, 3, 1])
    graph.node.append(nhwc)
    graph.output.insert(0, onnx.helper.make_tensor_value_info("gradcam_activations", onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(folder / ONNX_FILE))
    meta = {"layers": spec, "layer": relu.output[0].split("/")[-2], "scale": [scale] * 2, "offset": [offset] * 2}
    np.savez(folder / HEAD_FILE, spec=np.array(json.dumps(meta)), **arrays)
    return {"explain_onnx": ONNX_FILE, "explain_head": HEAD_FILE}


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
    entry.files.update(files)
    (args.artifact / "model.json").write_text(json.dumps(entry.model_dump(), indent=2) + "\n")
    print(files)


if __name__ == "__main__":
    main()
