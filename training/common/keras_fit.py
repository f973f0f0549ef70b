"""Compile and fit a Keras classifier as every training script does: Adam, early stopping on val_loss with the best
weights restored, and optionally a learning rate halved on plateaus."""

from __future__ import annotations

from typing import Any

MIN_LEARNING_RATE = 1e-5  # the floor of the halvings: below it Adam's steps no longer change these models


def fit(
    model,
    train,
    validation,
    *,
    epochs: int,
    learning_rate: float,
    patience: int,
    loss: Any = "sparse_categorical_crossentropy",
    metrics: list[Any] | None = None,
    reduce_lr_after: int | None = None,
    initial_epoch: int = 0,
) -> dict[str, list[float]]:
    """Train `epochs` more epochs (after initial_epoch) on the `train` batches, stopping after `patience` epochs
    without a lower validation loss and restoring the best weights; with reduce_lr_after, the learning rate is
    halved after that many such epochs. `loss` and `metrics`: as Keras' compile takes them (default: sparse
    cross-entropy and accuracy). Returns Keras' per-epoch history."""
    import keras

    model.compile(keras.optimizers.Adam(learning_rate), loss, metrics=metrics or ["accuracy"])
    callbacks = [keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)]
    if reduce_lr_after is not None:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=reduce_lr_after, min_lr=MIN_LEARNING_RATE)
        )
    history = model.fit(
        train,
        validation_data=validation,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=2,
    )
    return history.history
