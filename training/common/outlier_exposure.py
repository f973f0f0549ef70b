"""Outlier exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019) as a Keras loss and metric: training examples
labelled NEGATIVE (one past the last class) are not a class; their loss is the cross-entropy from the softmax to the
uniform distribution, times a weight, so the model learns to answer them with low confidence and the served
`confidence` check flags them. The output keeps its classes: nothing changes for a client."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

WEIGHT = 0.5  # the paper's lambda for classifiers trained from scratch or fine-tuned


def add_flags(
    p: argparse.ArgumentParser, kinds: tuple[str, ...], what: str, default: str, count: int, weight: float
) -> None:
    """A training script's --negatives (comma-separated, among `kinds`; "": outlier exposure off), --negatives-count
    and --oe-weight, with the script's defaults."""
    p.add_argument(
        "--negatives", default=default,
        help=f"outlier exposure: comma-separated kinds of {what} to train towards a uniform answer, among "
        f"{','.join(kinds)} (default: none)",
    )  # fmt: skip
    p.add_argument("--negatives-count", type=int, default=count, help="how many negatives to make")
    p.add_argument("--oe-weight", type=float, default=weight, help="the negatives' loss weight")


def with_negatives(
    x: np.ndarray, y: np.ndarray, negatives: np.ndarray, classes: int, weight: float
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The training inputs and labels with the negatives appended (labelled `classes`: not a class), and the loss
    and metrics to compile with (mnist_training.fit's `compiled`)."""
    x_fit = np.concatenate([x, negatives])
    y_fit = np.concatenate([y.astype(np.int64), np.full(len(negatives), classes)])
    return x_fit, y_fit, {"loss": loss(classes, weight), "metrics": [accuracy(classes)]}


def loss(classes: int, weight: float = WEIGHT) -> Any:
    """Sparse cross-entropy for labels < classes; weight x cross-entropy to uniform for the label `classes`."""
    from keras import ops

    def outlier_exposure_loss(y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        log_p = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        negative = ops.equal(labels, classes)
        picked = ops.take_along_axis(log_p, ops.expand_dims(ops.minimum(labels, classes - 1), 1), axis=1)[:, 0]
        return ops.where(negative, -weight * ops.mean(log_p, axis=1), -picked)

    return outlier_exposure_loss


def accuracy(classes: int) -> Any:
    """Accuracy on the examples that have a class (negatives are not counted), named "accuracy" as Keras' own."""
    import keras
    from keras import ops

    class ClassAccuracy(keras.metrics.Metric):
        def __init__(self, name: str = "accuracy", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            self.correct = self.add_variable((), initializer="zeros", name="correct")
            self.total = self.add_variable((), initializer="zeros", name="total")

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
            labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            counted = ops.cast(ops.less(labels, classes), "float32")
            right = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=1), "int32"), labels), "float32")
            self.correct.assign_add(ops.sum(right * counted))
            self.total.assign_add(ops.sum(counted))

        def result(self) -> Any:
            return self.correct / ops.maximum(self.total, 1.0)

        def reset_state(self) -> None:
            self.correct.assign(0.0)
            self.total.assign(0.0)

    return ClassAccuracy()
