"""Training on MNIST-format data (28x28 grey images: digits, Fashion-MNIST): the model input, the seeded validation
split with optional augmentation, and the fit the digit and fashion scripts both run."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from training.common import keras_fit


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1], the serving input."""
    return (images.astype("float32") / 255.0)[..., None]


def make_datasets(x: np.ndarray, y: np.ndarray, args: argparse.Namespace):
    """(training batches, validation batches): the last --validation-split of a seeded shuffle is held out; the
    training batches are reshuffled every epoch and, with --augment, shifted, rotated and zoomed a little."""
    import keras
    import tensorflow as tf

    order = np.random.default_rng(args.seed).permutation(len(x))
    x, y = x[order], y[order]
    n_val = max(1, int(len(x) * args.validation_split))
    x_train, y_train, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=args.seed)
    train = train.batch(args.batch_size)
    if args.augment:
        augment = keras.Sequential(
            [
                keras.layers.RandomRotation(0.04, fill_mode="constant", seed=args.seed),
                keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=args.seed),
                keras.layers.RandomZoom(0.08, fill_mode="constant", seed=args.seed),
            ]
        )
        train = train.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(512)
    return train.prefetch(tf.data.AUTOTUNE), val


def fit(
    model, x: np.ndarray, y: np.ndarray, args: argparse.Namespace, **compiled: Any
) -> tuple[dict[str, list[float]], float]:
    """Train on (x, y) split by make_datasets, with early stopping and the learning rate halved after half the
    patience; returns Keras' per-epoch history and the seconds it took. `compiled`: keras_fit.fit's loss and
    metrics, when not its defaults."""
    train_ds, val_ds = make_datasets(x, y, args)
    started = time.time()
    history = keras_fit.fit(
        model, train_ds, val_ds, epochs=args.epochs, learning_rate=args.learning_rate, patience=args.patience,
        reduce_lr_after=max(1, args.patience // 2), **compiled,
    )  # fmt: skip
    return history, time.time() - started
