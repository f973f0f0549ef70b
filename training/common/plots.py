"""Plots a person looks at after a training run: curves, confusion matrix, sample predictions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(history: dict[str, list[float]] | list[dict[str, list[float]]], path: Path) -> None:
    """Loss and metrics per epoch, train and validation; a list of histories (an ensemble) draws one line each."""
    runs = history if isinstance(history, list) else [history]
    metrics = [k for k in runs[0] if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, key in zip(axes[0], metrics, strict=True):
        for i, run in enumerate(runs):
            suffix = f" {i + 1}" if len(runs) > 1 else ""
            epochs = range(1, len(run[key]) + 1)
            ax.plot(epochs, run[key], label=f"train{suffix}", color=f"C{2 * i}")
            if f"val_{key}" in run:
                ax.plot(epochs, run[f"val_{key}"], label=f"validation{suffix}", color=f"C{2 * i + 1}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix_plot(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(labels), 1 + 0.6 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color="white" if value > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sample_predictions(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, path: Path, n: int = 16) -> None:
    """First row: correct predictions; second and third: misclassified ones (red), the ones worth looking at."""
    right = np.flatnonzero(y_true == y_pred)[: n // 2]
    wrong = np.flatnonzero(y_true != y_pred)[:n]
    picks = [(i, "black") for i in right] + [(i, "red") for i in wrong]
    cols = 8
    rows = max(1, -(-len(picks) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, color) in zip(axes.flat, picks, strict=False):
        ax.imshow(images[i].squeeze(), cmap="gray")
        ax.set_title(f"{y_true[i]}→{y_pred[i]}", color=color, fontsize=9)
    fig.suptitle("true→predicted (red: misclassified)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
