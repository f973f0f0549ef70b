"""Train a Fashion-MNIST classifier and write a versioned, servable artifact to models/fashion/<version>/.

    python -m training.train_fashion                                           # downloads Fashion-MNIST with Keras
    python -m training.train_fashion --data /usr/share/datasets/fashion-mnist  # Debian's dataset-fashion-mnist
    python -m training.train_fashion --dnn                                     # the seed's dense network instead
    python -m training.train_fashion --data ... --photos data/clothing_photos/train  # also learn from real photos
    python -m training.train_fashion --data ... --photos ... --styled 20000 --negatives digits,photos,noise \\
        --digits-data ../shared/data/mnist/mnist.npz --negative-photos ../shared/data/cats_and_dogs/train/cats

The artifact holds the Keras model, the ONNX export the service runs (POST /predict/image?model=fashion),
labels.json (the class names), metrics.json and plots.

Fashion-MNIST's items are product shots; people photograph garments on floors, beds and hangers. With --photos (an
image folder of real photos, e.g. the CC0 "clothing dataset small", one folder a class: training/common/
clothing_photos.py maps its classes), three fifths of the photos, made into inputs by the service's own
preprocessing and augmented, join the training data; the other two fifths (a validation part and a held-out part,
fixed by file name) are scored through the ONNX export into metrics.json (photo_validation, photo_held_out).

With --negatives (digits, photos of other things, noise: training/common/negatives.py), the model also learns to
answer such inputs with a uniform distribution (outlier exposure: training/common/outlier_exposure.py), so its
calibrated confidence flags them; --styled adds training items as users send them (soft, dark on light,
photographed large), so that the model stays sure of real garments that do not look like the product shots.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np

from app.families import tasks
from app.families.fashion.preprocess import CLASSES, SIZE, prepare_item, to_input
from training.common import artifacts, cli, clothing_photos, mnist_training, negatives, outlier_exposure, plots, restyle
from training.common.downloads import downloading
from training.common.explain_export import export_explain
from training.common.export import OnnxModel, export_onnx, verify_classifier
from training.common.mnist_data import load_mnist

# Defaults. Each is a command-line flag too.
EPOCHS = 12  # upper bound; early stopping may end the run sooner
BATCH_SIZE = 256  # faster epochs on 2 CPU cores at the same accuracy
LEARNING_RATE = 1e-3  # Adam's default; halved on plateaus
VALIDATION_SPLIT = 0.1  # held out from the 60,000 training images for early stopping
PATIENCE = 3  # epochs without val_loss improvement before stopping (best weights are restored)
AUGMENT = False  # the digit script's small shifts/rotations/zooms; slower to converge at this budget
PHOTO_COPIES = 10  # augmented copies of each training photo (about 1,800 photos beside 60,000 items)
NEGATIVES = ""  # outlier exposure off; e.g. "digits,photos,noise" (training/common/negatives.py GARMENT_KINDS)
NEGATIVES_COUNT = 15_000  # negatives made, a third of each kind (beside ~100,000 items and photos)
OE_WEIGHT = 1.0  # the negatives' loss weight: 1 flags digits and photos of other things more than the paper's 0.5
STYLED = 0  # Fashion-MNIST training items added again as users send them (training/common/restyle.py FASHION_STYLES)
SEED = 42
NAME = "fashion"


def load_fashion(data: str | None):
    """((x_train, y_train), (x_test, y_test)), uint8 28x28: a folder with the 4 IDX .gz files (the same names as
    MNIST's), a .npz with Keras' keys, or Keras' canonical download when None."""
    if data is None:
        import keras

        with downloading("Fashion-MNIST", "--data path/to/folder (its 4 IDX .gz files) or a .npz"):
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


def train(args: argparse.Namespace, command: str) -> Path:
    import keras

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_fashion(args.data)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_raw, y_raw = x_train, y_train
    x_train, x_test = to_input(x_train), to_input(x_test)
    if args.photos:
        photos, photo_labels, _ = clothing_photos.load_part(args.photos, "train")
        rng = np.random.default_rng(args.seed)
        x_train = np.concatenate([x_train, clothing_photos.augmented(photos, args.photo_copies, rng)])
        y_train = np.concatenate([y_train, np.repeat(photo_labels, args.photo_copies)])
    record: dict = {}
    if args.styled:  # items as users send them (soft, dark on light, photographed large), prepared as served
        rng = np.random.default_rng(args.seed + 1)
        styled, labels = restyle.styled(x_raw, y_raw, args.styled, rng, restyle.FASHION_STYLES, prepare_item)
        x_train, y_train = np.concatenate([x_train, styled]), np.concatenate([y_train, labels])
        record["styled_examples"] = len(styled)
    kinds = [k for k in args.negatives.split(",") if k]
    x_fit, y_fit, compiled = x_train, y_train, {}
    if kinds:
        digits = load_mnist(args.digits_data)[0][0] if "digits" in kinds and args.digits_data else None
        others = [Path(folder) for folder in args.negative_photos]
        x_negative = negatives.for_garments(kinds, args.negatives_count, args.seed, digits, others)
        record["negatives"] = {"kinds": kinds, "count": len(x_negative), "weight": args.oe_weight,
                               "digits": args.digits_data, "photos": args.negative_photos}  # fmt: skip
        x_fit, y_fit, compiled = outlier_exposure.with_negatives(
            x_train, y_train, x_negative, len(CLASSES), args.oe_weight
        )
    if args.fine_tune:
        record["fine_tuned_from"] = args.fine_tune
    model = keras.models.load_model(args.fine_tune, compile=False) if args.fine_tune else build_model(args.dnn)
    history, seconds = mnist_training.fit(model, x_fit, y_fit, args, **compiled)

    version, out = artifacts.new_artifact_dir(args.out, NAME, args.version)
    files = {**export_onnx(model, out), "labels": "labels.json"}
    if not args.dnn:  # Grad-CAM needs convolutions: POST /explain/image
        files |= export_explain(model, out, x_test[:64])
    artifacts.write_json(out / "labels.json", {"labels": CLASSES})
    metrics, probabilities = verify_classifier(model, out, x_test, y_test, CLASSES)
    metrics |= artifacts.run_record(model, history, seconds, train=len(x_train), test=len(x_test)) | record
    if args.photos:
        metrics |= photo_metrics(out, args.photos)
    samples = partial(plots.sample_predictions, x_test, y_test, probabilities.argmax(axis=1))
    artifacts.save_run(
        args.out, out, name=NAME, version=version, task=tasks.IMAGE, runtime="fashion-onnx",
        files=files, metrics=metrics, command=command, data=args.data,
        summary=f"test accuracy {metrics['test_accuracy']:.4f}",
        history=history, labels=CLASSES, extra_plots={"sample_predictions": samples},
    )  # fmt: skip
    return out


def photo_metrics(out: Path, folder: str) -> dict:
    """The export's accuracy on the photos it did not learn from: the validation part (for choosing settings) and
    the held-out part (reported, never tuned on)."""
    onnx = OnnxModel(out / "model.onnx")
    found = {}
    for part in ("validation", "held-out"):
        x, _, classes = clothing_photos.load_part(folder, part)
        predicted = onnx(x).argmax(axis=1) if len(x) else np.zeros(0, dtype=int)
        key = "photo_" + part.replace("-", "_")
        found[key] = {**clothing_photos.accuracy(predicted, classes), "folder": folder}
        found[key + "_accuracy"] = found[key]["accuracy"]  # model.json (GET /models) keeps the numbers
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.training_parser(
        __doc__, "a folder with the 4 Fashion-MNIST IDX .gz files, or a .npz (default: download)",
        epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, validation_split=VALIDATION_SPLIT,
        patience=PATIENCE, augment=AUGMENT, limit=0, seed=SEED,
    )  # fmt: skip
    p.add_argument("--dnn", action="store_true", help="the seed's dense network (two hidden layers) instead of the CNN")
    p.add_argument("--photos", help="also learn from real photos of garments: an image folder, one folder a class")
    p.add_argument("--photo-copies", type=int, default=PHOTO_COPIES, help="augmented copies of each training photo")
    outlier_exposure.add_flags(p, negatives.GARMENT_KINDS, "non-garments", NEGATIVES, NEGATIVES_COUNT, OE_WEIGHT)
    p.add_argument("--digits-data", help="MNIST (a .npz or IDX folder; its training part) for --negatives digits")
    p.add_argument(
        "--negative-photos", nargs="+", default=[],
        help="folders of photos of things that are not garments, for --negatives photos (an equal share each)",
    )  # fmt: skip
    p.add_argument("--fine-tune", help="start from this model.keras (e.g. models/fashion/3/model.keras), not anew")
    p.add_argument("--styled", type=int, default=STYLED, help="training items added again as users send them")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_fashion", argv))


if __name__ == "__main__":
    main()
