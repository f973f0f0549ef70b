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
