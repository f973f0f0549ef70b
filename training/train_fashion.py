"""Train a Fashion-MNIST classifier and write a versioned, servable artifact to models/fashion/<version>/.

    python -m training.train_fashion                                           # downloads Fashion-MNIST with Keras
    python -m training.train_fashion --data /usr/share/datasets/fashion-mnist  # Debian's dataset-fashion-mnist
    python -m training.train_fashion --dnn                                     # the seed's dense network instead

The artifact holds the Keras model, the ONNX export the service runs (POST /predict/image?model=fashion),
labels.json (the class names), metrics.json and plots.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import numpy as np

from app.families.fashion.preprocess import CLASSES, SIZE, to_input
from training.common import artifacts, plots
from training.common.export import OnnxModel, classifier_metrics, export_onnx
from training.common.mnist_data import load_mnist
from training.train_digit import make_datasets

# Defaults. Each is a command-line flag too.
EPOCHS = 12  # upper bound; early stopping may end the run sooner
BATCH_SIZE = 256  # faster epochs on 2 CPU cores at the same accuracy
LEARNING_RATE = 1e-3  # Adam's default; halved on plateaus
VALIDATION_SPLIT = 0.1  # held out from the 60,000 training images for early stopping
PATIENCE = 3  # epochs without val_loss improvement before stopping (best weights are restored)
AUGMENT = False  # the digit script's small shifts/rotations/zooms; slower to converge at this budget
SEED = 42
NAME = "fashion"


def load_fashion(data: str | None):
    """((x_train, y_train), (x_test, y_test)), uint8 28x28: a folder with the 4 IDX .gz files (the same names as
    MNIST's), a .npz with Keras' keys, or Keras' canonical download when None."""
    if data is None:
        import keras

        return keras.datasets.fashion_mnist.load_data()
    return load_mnist(data)


def build_model(dnn: bool = False):
    """A small CNN: three conv blocks (batch norm, max pooling) and a dropout-regularised dense head; or with --dnn
    the seed's dense network on the flattened pixels."""
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    if dnn:
        x = layers.Flatten()(inputs)
        for units in (256, 128):
            x = layers.Dropout(0.2)(layers.Dense(units, activation="relu")(x))
    else:
        x = inputs
        for filters in (32, 64, 128):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.MaxPooling2D(2)(layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(x)))
        x = layers.Dropout(0.4)(layers.Dense(128, activation="relu")(layers.Flatten()(x)))
    outputs = layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="fashion_dnn" if dnn else "fashion_cnn")


def fit(model, args: argparse.Namespace, x: np.ndarray, y: np.ndarray):
    import keras

    model.compile(keras.optimizers.Adam(args.learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [
        keras.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, args.patience // 2), min_lr=1e-5),
    ]
    train_ds, val_ds = make_datasets(x, y, args)
    return model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=callbacks, verbose=2).history


def train(args: argparse.Namespace, command: str) -> Path:
    import keras

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_fashion(args.data)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_train, x_test = to_input(x_train), to_input(x_test)
    model = build_model(args.dnn)
    started = time.time()
    history = fit(model, args, x_train, y_train)
    seconds = time.time() - started

    version, out = artifacts.new_artifact_dir(args.out, NAME, args.version)
    export_onnx(model, out)
    (out / "labels.json").write_text(json.dumps({"labels": CLASSES}, indent=2) + "\n")
    probabilities = model.predict(x_test, batch_size=1024, verbose=0)
    y_pred = probabilities.argmax(axis=1)
    metrics = {
        "test_accuracy": float((y_pred == y_test).mean()),
        "test_loss": float(-np.log(np.clip(probabilities[np.arange(len(y_test)), y_test], 1e-7, 1)).mean()),
        **classifier_metrics(y_test, probabilities, OnnxModel(out / "model.onnx")(x_test), CLASSES),
        "epochs": len(history["loss"]),
        "seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
        "architecture": model.name,
        "train_examples": int(len(x_train)),
        "test_examples": int(len(x_test)),
        **artifacts.keras_run_record(history),
    }
    artifacts.save_run(
        args.out, out, name=NAME, version=version, task="image-classification", runtime="fashion-onnx",
        files={"onnx": "model.onnx", "keras": "model.keras", "labels": "labels.json"}, metrics=metrics,
        command=command, summary=f"test accuracy {metrics['test_accuracy']:.4f}", history=history, labels=CLASSES,
        extra_plots={"sample_predictions": partial(plots.sample_predictions, x_test, y_test, y_pred)},
    )  # fmt: skip
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a folder with the 4 Fashion-MNIST IDX .gz files, or a .npz (default: download)")
    artifacts.add_output_args(p)
    defaults = {"epochs": EPOCHS, "batch-size": BATCH_SIZE, "learning-rate": LEARNING_RATE, "seed": SEED}
    for flag, default in {**defaults, "validation-split": VALIDATION_SPLIT, "patience": PATIENCE}.items():
        p.add_argument(f"--{flag}", type=type(default), default=default)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=AUGMENT, help="shifts, rotations, zooms")
    p.add_argument("--dnn", action="store_true", help="the seed's dense network (two hidden layers) instead of the CNN")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke runs)")
    args = p.parse_args(argv)
    if not 0 < args.validation_split < 1:
        raise ValueError("--validation-split must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_fashion", argv))


if __name__ == "__main__":
    main()
