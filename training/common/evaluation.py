"""Classification evaluation shared by the training scripts: confusion matrix and per-class accuracy."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Recall of each class: the share of its examples predicted as it."""
    return {label: float(matrix[i, i] / max(1, matrix[i].sum())) for i, label in enumerate(labels)}
