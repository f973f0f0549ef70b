"""Keras -> ONNX export and the check that the exported model computes what the trained one does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.common import evaluation


def export_onnx(model, out: Path, *, sample: np.ndarray | None = None, save_keras: bool = True) -> dict[str, str]:
    """model.onnx (what the service runs) and, with save_keras, model.keras in the artifact folder `out`; returns
    the files written by role, as the manifest entry lists them ({"onnx": "model.onnx", "keras": "model.keras"}).

    `sample`: an input the model is called on once first, which fixes the signature the export traces (models
    built without a fixed input shape need it).
    """
    if save_keras:
        model.save(out / "model.keras")
    if sample is not None:
        model(sample)
    model.export(str(out / "model.onnx"), format="onnx", verbose=False)
    return {"onnx": "model.onnx", **({"keras": "model.keras"} if save_keras else {})}


class OnnxModel:
    """An exported model run as the service runs it: onnxruntime on the CPU, first input -> first output."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def classifier_metrics(
    y: np.ndarray, probabilities: np.ndarray, onnx_probabilities: np.ndarray, labels: list[str], split: str = "test"
) -> dict:
    """ONNX accuracy and its largest difference from the framework's probabilities, then the framework model's
    per-class accuracy and confusion matrix (rows true, columns predicted) on the same examples."""
    matrix = evaluation.confusion_matrix(y, probabilities.argmax(axis=1), len(labels))
    return {
        f"onnx_{split}_accuracy": float((onnx_probabilities.argmax(axis=1) == y).mean()),
        "onnx_max_abs_diff": float(np.abs(onnx_probabilities - probabilities).max()),
        "per_class_accuracy": evaluation.per_class_accuracy(matrix, labels),
        "confusion_matrix": matrix.tolist(),
    }


def verify_classifier(
    model, out: Path, x: np.ndarray, y: np.ndarray, labels: list[str], *, split: str = "test", batch_size: int = 1024
) -> tuple[dict, np.ndarray]:
    """The Keras classifier and its export out/model.onnx scored on the same examples, fed to both in float32
    batches of batch_size: {split}_accuracy and {split}_loss (cross-entropy) of the Keras model, then
    classifier_metrics. Returns them and the Keras probabilities."""
    onnx = OnnxModel(out / "model.onnx")
    keras_batches, onnx_batches = [], []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].astype(np.float32)
        keras_batches.append(np.asarray(model.predict_on_batch(batch)))
        onnx_batches.append(onnx(batch))
    probabilities, onnx_probabilities = np.concatenate(keras_batches), np.concatenate(onnx_batches)
    picked = np.clip(probabilities[np.arange(len(y)), np.asarray(y, dtype=int)], 1e-7, 1 - 1e-7)  # as Keras clips
    return {
        f"{split}_accuracy": float((probabilities.argmax(axis=1) == y).mean()),
        f"{split}_loss": float(-np.log(picked).mean()),
        **classifier_metrics(y, probabilities, onnx_probabilities, labels, split),
    }, probabilities


def export_torch_onnx(model, path: Path, opset: int = 17) -> None:
    """A PyTorch sequence classifier -> ONNX with inputs input_ids and attention_mask (int64, dynamic batch and
    sequence axes) and output logits. TorchScript-based exporter (dynamo=False): one graph, no onnxscript."""
    import warnings

    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    wrapper = Logits(model).eval()  # eval() here too: export restores the wrapper's mode onto the model
    ids = torch.tensor([[101, 2023, 2003, 102, 0], [101, 2307, 3185, 999, 102]])
    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, (ids != 0).long()),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


# Dynamic int8 recipes, tried in this order: int8 weights for MatMul/Gemm/Gather, activations quantised per call.
# "ffn_out_float" keeps each layer's second feed-forward MatMul in float: its inputs (after GELU) have the widest
# range, so one per-tensor activation scale loses the most there.
QUANTIZATION_RECIPES = ("per_tensor", "per_channel", "ffn_out_float")


def quantize_dynamic_int8(src: Path, dst: Path, recipe: str) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if recipe not in QUANTIZATION_RECIPES:
        raise ValueError(f"unknown quantisation recipe {recipe!r}; expected one of {QUANTIZATION_RECIPES}")
    exclude = None
    if recipe == "ffn_out_float":
        graph = onnx.load(str(src), load_external_data=False).graph
        exclude = [n.name for n in graph.node if n.op_type == "MatMul" and is_ffn_output(n.name)]
    logging.getLogger().setLevel(logging.ERROR)  # silences the "consider pre-processing" hint
    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=recipe != "per_tensor", nodes_to_exclude=exclude
    )


def is_ffn_output(node: str) -> bool:
    """The second feed-forward MatMul of a layer: BERT's .../output/dense/MatMul (not attention/output), DistilBERT's
    .../ffn/lin2/MatMul."""
    return ("/output/dense/" in node and "/attention/" not in node) or "/ffn/lin2/" in node
