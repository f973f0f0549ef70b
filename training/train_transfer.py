"""Transfer learning: a frozen MobileNetV2 (ImageNet) with a small head, trained on any image-folder dataset,
written as a versioned, servable artifact to models/image/<version>/.

    python -m training.train_transfer --data path/to/image-folder                 # Keras downloads ImageNet weights
    python -m training.train_transfer --data ../shared/data/cats_and_dogs \\
        --weights ~/.cache/deepserve/mobilenet_v2_1.0_224_imagenet.weights.h5   # from mobilenet_tflite_import
    python -m training.train_transfer --data ... --fine-tune-epochs 2              # then unfreeze the top layers

The dataset has one folder per class, in train/ and validation/ folders or split here (--validation-split).
The model takes RGB 0..255 [batch, size, size, 3] (MobileNetV2's scaling is inside it); images are resized by
app.families.image.preprocess.prepare_image, which the service calls too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from app.families import tasks
from training.common import artifacts, cli, keras_fit
from training.common.downloads import downloading
from training.common.explain_export import export_explain
from training.common.export import export_onnx, verify_classifier
from training.common.image_folder import load_image_folder, load_images

# Defaults. Each is a command-line flag too.
WEIGHTS = "imagenet"  # "imagenet" (Keras download), a .weights.h5 path (training.mobilenet_tflite_import) or "none"
IMAGE_SIZE = 224  # MobileNetV2's ImageNet resolution
ALPHA = 1.0  # MobileNetV2 width; ImageNet weights exist for 0.35-1.4, the imported TFLite file is 1.0
EPOCHS = 5  # frozen-base epochs (upper bound; early stopping); the head converges in 3-5 on cats_and_dogs
FINE_TUNE_EPOCHS = 0  # > 0: afterwards unfreeze the top of the base and train this many more epochs
FINE_TUNE_LAYERS = 30  # base layers unfrozen for fine-tuning (the last ~2 inverted-residual blocks + Conv_1)
FINE_TUNE_LEARNING_RATE = 1e-5  # low, so the pretrained features are nudged, not destroyed
BATCH_SIZE = 32
LEARNING_RATE = 1e-3  # Adam on the head
DENSE_UNITS = 128
DROPOUT = 0.3
VALIDATION_SPLIT = 0.2  # used only when the data has no validation/ folder
PATIENCE = 2  # epochs without val_loss improvement before stopping (best weights are restored)
AUGMENT = True  # random horizontal flips, small rotations and zooms on the training images
SEED = 42
NAME = "image"
INPUT = "RGB 0..255 float32 [batch, h, w, 3]"  # what the exported model takes, as labels.json tells the service


def build_base(weights: str, image_size: int, alpha: float):
    """MobileNetV2 without its classifier, ending at the 1280-channel `out_relu` feature map."""
    import keras

    shape = (image_size, image_size, 3)
    if weights in ("imagenet", "none"):
        with downloading("MobileNetV2's ImageNet weights", "--weights PATH.weights.h5 (or none)"):
            return keras.applications.MobileNetV2(
                input_shape=shape, alpha=alpha, include_top=False, weights=None if weights == "none" else "imagenet"
            )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--weights {weights}: no such file (run python -m training.mobilenet_tflite_import)")
    # The file holds the full ImageNet model (with its head), so build that, load, and cut at the features.
    full = keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, include_top=True, weights=None)
    full.load_weights(path)
    return keras.Model(full.input, full.get_layer("out_relu").output, name=f"mobilenetv2_{alpha:g}_{image_size}")


def calibrate_batch_norm(base, images: np.ndarray) -> None:
    """Data-dependent init for a from-scratch base (--weights none): BN moving statistics := one batch's statistics.

    A randomly initialised MobileNetV2 in inference mode shrinks its signal ~1e-10 by the last layer (Glorot init
    of depthwise kernels, identity batch norm), so its frozen features carry nothing a head can learn from.
    """
    import keras

    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta, trainable = [layer.momentum for layer in norms], base.trainable
    base.trainable = True  # frozen batch norm ignores training=True
    for layer in norms:
        layer.momentum = 0.0
    base(images.astype(np.float32) / 127.5 - 1.0, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    base.trainable = trainable


def build_model(num_classes: int, weights: str = WEIGHTS, image_size: int = IMAGE_SIZE, alpha: float = ALPHA):
    """RGB 0..255 -> [-1, 1] -> frozen MobileNetV2 -> GAP -> Dense(128, relu) -> Dropout(0.3) -> softmax."""
    import keras
    from keras import layers

    base = build_base(weights, image_size, alpha)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_v2_scaling")(inputs)
    x = base(x, training=False)  # Keras 3 ignores this at fit time once unfrozen: fine-tuning freezes BN itself
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(DENSE_UNITS, activation="relu")(x)
    x = layers.Dropout(DROPOUT)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mobilenetv2_transfer"), base


def make_datasets(x_train, y_train, x_val, y_val, args: argparse.Namespace):
    import keras
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=args.seed)
    train = train.batch(args.batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b))
    if args.augment:
        augment = keras.Sequential(
            [
                keras.layers.RandomFlip("horizontal", seed=args.seed),
                keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=args.seed),
                keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=args.seed),
            ]
        )
        train = train.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(64).map(lambda a, b: (tf.cast(a, tf.float32), b))
    return train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)


def load_splits(args: argparse.Namespace):
    """(class names, x_train, y_train, x_val, y_val, seconds spent loading) from the image folder."""
    data = load_image_folder(args.data, args.validation_split, args.seed)
    train_split, val_split = data.train, data.validation
    if args.limit:  # the first N images of each class (smoke runs)
        keep = np.concatenate(
            [np.flatnonzero(train_split.labels == c)[: args.limit] for c in range(len(data.class_names))]
        )
        train_split.paths = [train_split.paths[i] for i in keep]
        train_split.labels = train_split.labels[keep]
    started = time.time()
    x_train, x_val = load_images(train_split.paths, args.image_size), load_images(val_split.paths, args.image_size)
    load_seconds = time.time() - started
    print(f"{len(x_train)} training and {len(x_val)} validation images of {data.class_names} ({load_seconds:.0f} s)")
    return data.class_names, x_train, train_split.labels, x_val, val_split.labels, load_seconds


def fine_tune(model, base, train_ds, val_ds, args: argparse.Namespace, history: dict) -> tuple[dict, dict]:
    """Unfreeze the top --fine-tune-layers of the base (batch norm stays frozen) and train on; returns the joined
    history and what was fine-tuned."""
    import keras

    base.trainable = True
    for layer in base.layers[: -args.fine_tune_layers]:
        layer.trainable = False
    for layer in base.layers:  # frozen batch norm always runs in inference mode (else it uses batch stats)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    more = keras_fit.fit(
        model, train_ds, val_ds, epochs=args.fine_tune_epochs, learning_rate=args.fine_tune_learning_rate,
        patience=args.patience, initial_epoch=len(history["loss"]),
    )  # fmt: skip
    history = {k: history[k] + more.get(k, []) for k in history}
    return history, {"layers": args.fine_tune_layers, "epochs": len(more["loss"])}


def train(args: argparse.Namespace, command: str) -> Path:
    import keras

    keras.utils.set_random_seed(args.seed)
    class_names, x_train, y_train, x_val, y_val, load_seconds = load_splits(args)
    train_ds, val_ds = make_datasets(x_train, y_train, x_val, y_val, args)
    model, base = build_model(len(class_names), args.weights, args.image_size, args.alpha)
    if args.weights == "none":  # random features (smoke tests): at least give them a usable scale
        calibrate_batch_norm(base, x_train[np.random.default_rng(args.seed).permutation(len(x_train))[:64]])
    started = time.time()
    history = keras_fit.fit(
        model, train_ds, val_ds, epochs=args.epochs, learning_rate=args.learning_rate, patience=args.patience
    )
    frozen_loss, frozen_accuracy = model.evaluate(val_ds, verbose=0)
    frozen_epochs, fine_tuned = len(history["loss"]), None
    if args.fine_tune_epochs > 0:
        history, fine_tuned = fine_tune(model, base, train_ds, val_ds, args, history)
    seconds = time.time() - started

    version, out = artifacts.new_artifact_dir(args.out, NAME, args.version)
    files = {**export_onnx(model, out, save_keras=args.save_keras), "labels": "labels.json"}
    files |= export_explain(model, out, x_val[:8].astype(np.float32))  # POST /explain/image
    artifacts.write_json(out / "labels.json", {"labels": class_names, "image_size": args.image_size, "input": INPUT})
    metrics, _ = verify_classifier(model, out, x_val, y_val, class_names, split="validation", batch_size=64)
    metrics |= {
        "frozen_validation_accuracy": float(frozen_accuracy),
        "frozen_validation_loss": float(frozen_loss),
        "classes": class_names,
        **artifacts.run_record(model, history, seconds, train=len(x_train), validation=len(x_val)),
        "frozen_epochs": frozen_epochs,
        "fine_tuning": fine_tuned,
        "image_load_seconds": round(load_seconds, 1),
        "trainable_parameters": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "architecture": f"MobileNetV2(alpha={args.alpha:g}, {args.image_size}px) + GAP + Dense({DENSE_UNITS}) + "
        f"Dropout({DROPOUT}) + Dense({len(class_names)})",
        "base_weights": str(args.weights),
        "image_size": args.image_size,
        "augment": bool(args.augment),
    }
    artifacts.save_run(
        args.out, out, name=NAME, version=version, task=tasks.IMAGE, runtime="image-onnx", files=files,
        metrics=metrics, command=command, data=args.data, history=history, labels=class_names,
        summary=f"validation accuracy {metrics['validation_accuracy']:.4f}, loss {metrics['validation_loss']:.4f}",
    )  # fmt: skip
    print(json.dumps({k: metrics[k] for k in ("frozen_validation_accuracy", "per_class_accuracy")}))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.training_parser(
        __doc__, "image folder: train/ + validation/, or class folders", data_required=True,
        epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, validation_split=VALIDATION_SPLIT,
        patience=PATIENCE, augment=AUGMENT, seed=SEED,
    )  # fmt: skip
    p.add_argument("--weights", default=WEIGHTS, help="imagenet (Keras download), PATH.weights.h5, or none")
    p.add_argument("--image-size", type=int, default=IMAGE_SIZE, help="model input side, in pixels")
    p.add_argument("--alpha", type=float, default=ALPHA, help="MobileNetV2 width multiplier")
    p.add_argument("--fine-tune-epochs", type=int, default=FINE_TUNE_EPOCHS, help="0: no fine-tuning phase")
    p.add_argument("--fine-tune-layers", type=int, default=FINE_TUNE_LAYERS, help="top base layers unfrozen")
    p.add_argument("--fine-tune-learning-rate", type=float, default=FINE_TUNE_LEARNING_RATE, help="of that phase")
    p.add_argument("--save-keras", action=argparse.BooleanOptionalAction, default=True, help="also write model.keras")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images per class")
    args = p.parse_args(argv)
    if args.fine_tune_layers < 1:
        raise ValueError("--fine-tune-layers must be at least 1")
    if args.weights not in ("imagenet", "none") and not str(args.weights).endswith(".h5"):
        raise ValueError("--weights must be imagenet, none, or a .weights.h5 file")
    return args


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_transfer", argv))


if __name__ == "__main__":
    main()
