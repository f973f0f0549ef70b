"""Train the digit CNN on MNIST and write a versioned, servable artifact to models/digit/<version>/.

    python -m training.train_digit                                   # downloads MNIST with Keras
    python -m training.train_digit --data ../shared/data/mnist/mnist.npz
    python -m training.train_digit --data /path/to/idx-folder --wide --epochs 5
    python -m training.train_digit --data ../shared/data/mnist/mnist.npz --styled 20000 \\
        --negatives fonts,noise,fashion                                   # outlier exposure: models/digit/2
    python -m training.train_digit --data ../shared/data/mnist/mnist.npz --styled 20000 \\
        --negatives fonts,pen,noise,fashion                               # and pen-drawn letters

--negatives adds outlier exposure: images that are not digits (letters printed in many fonts or drawn with a pen
in Hershey's single-stroke fonts, noise, Fashion-MNIST training items: training/common/negatives.py) are trained
towards a uniform answer (training/common/outlier_exposure.py), so the served confidence check flags them; the
model still has 10 outputs. "kind:weight" changes a kind's share (e.g. pen:0.9; the defaults are
negatives.DIGIT_SHARES).
--styled adds training digits drawn as users send them (tiny, soft, thick, inverted, large: training/common/
restyle.py), so the model stays sure of real digits that look unusual.

The artifact holds the Keras model, the ONNX export the service runs, metrics.json and plots.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np

from app.families import tasks
from training.common import artifacts, cli, mnist_training, negatives, outlier_exposure, plots, restyle
from training.common.explain_export import export_explain
from training.common.export import export_onnx, verify_classifier
from training.common.mnist_data import load_mnist
from training.common.mnist_training import to_input

# Defaults. Each is a command-line flag too.
EPOCHS = 20  # upper bound; early stopping usually ends the run around epoch 10-15
BATCH_SIZE = 128  # 128 keeps 2 CPU cores busy without hurting accuracy
LEARNING_RATE = 1e-3  # Adam's default; halved on plateaus by the callback below
VALIDATION_SPLIT = 0.1  # the last 10% of the (shuffled) training set
PATIENCE = 4  # epochs without val_loss improvement before stopping (best weights are restored)
AUGMENT = True  # small shifts, rotations and zooms: +0.2-0.3 points of test accuracy and robustness to user input
SEED = 42
NEGATIVES = ""  # outlier exposure off; e.g. "fonts,noise,fashion" (training/common/negatives.py KINDS)
NEGATIVES_COUNT = 30000  # negatives made (about half of MNIST's 60,000 training digits)
OE_WEIGHT = outlier_exposure.WEIGHT  # the negatives' loss weight (the paper's 0.5)
STYLED = 0  # MNIST training digits added again as users send them (training/common/restyle.py), prepared by the service
PEN_DIGITS = 0  # digits drawn with the pen of the pen-drawn negatives, added as training digits
FASHION_DATA = "/usr/share/datasets/fashion-mnist"  # its training part only, for --negatives fashion
NAME = "digit"
LABELS = [str(d) for d in range(10)]


def build_model(wide: bool = False):
    """The seed CNN (93,322 parameters), or with --wide: no third conv and Dense(128)."""
    import keras
    from keras import layers

    blocks = [
        keras.Input((28, 28, 1), name="image"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
    ]
    if not wide:
        blocks.append(layers.Conv2D(64, 3, activation="relu"))
    blocks += [
        layers.Flatten(),
        layers.Dense(128 if wide else 64, activation="relu"),
        layers.Dense(10, activation="softmax", name="probabilities"),
    ]
    return keras.Sequential(blocks, name="digit_cnn_wide" if wide else "digit_cnn")


def train(args: argparse.Namespace, command: str) -> Path:
    import keras

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    # With outlier exposure, digits drawn as users send them keep the model sure of real digits unlike MNIST's own
    # (else 8x8 digits look "unusual" as letters do).
    styled = restyle.styled(x_train, y_train, args.styled, np.random.default_rng(args.seed))
    x_train, x_test = to_input(x_train), to_input(x_test)
    x_train, y_train = np.concatenate([x_train, styled[0]]), np.concatenate([y_train, styled[1]])
    if args.pen_digits:  # after the seeded restyling, so that --styled draws the same digits with or without them
        pen = negatives.pen_digits(args.pen_digits, np.random.default_rng(args.seed + 1))
        x_train, y_train = np.concatenate([x_train, pen[0]]), np.concatenate([y_train, pen[1]])
    model = keras.saving.load_model(args.fine_tune, compile=False) if args.fine_tune else build_model(args.wide)
    kinds = [k for k in args.negatives.split(",") if k]
    record: dict = {"fine_tuned_from": args.fine_tune} if args.fine_tune else {}
    if args.styled:
        record["styled_examples"] = len(styled[0])
    if args.pen_digits:
        record["pen_digits"] = {"count": int(args.pen_digits), "fonts": list(negatives.PEN_FONTS)}
    if kinds:
        shares = negatives.digit_shares(kinds)
        fashion = load_mnist(args.fashion_data)[0][0] if "fashion" in shares else None
        roots = tuple(Path(d) for d in args.font_dir) if args.font_dir else negatives.FONT_ROOTS
        x_negative = negatives.for_digits(kinds, args.negatives_count, args.seed, fashion, roots)
        record["negatives"] = {
            "kinds": kinds, "shares": shares, "count": len(x_negative), "weight": args.oe_weight,
            "fonts_held_out": list(negatives.HELD_OUT),
            "font_families": sorted(
                {f for f, paths in negatives.font_families(roots).items() if not negatives.held_out(f, paths[0])}
            ),
        }  # fmt: skip
        if "pen" in shares:
            pens = {"pen_fonts": list(negatives.PEN_FONTS), "pen_held_out": list(negatives.PEN_HELD_OUT)}
            record["negatives"] |= pens
        fit = outlier_exposure.with_negatives(x_train, y_train, x_negative, len(LABELS), args.oe_weight)
        history, seconds = mnist_training.fit(model, fit[0], fit[1], args, **fit[2])
    else:
        history, seconds = mnist_training.fit(model, x_train, y_train, args)

    version, out = artifacts.new_artifact_dir(args.out, NAME, args.version)
    files = export_onnx(model, out) | export_explain(model, out, x_test[:64])  # explain: POST /explain/digit
    metrics, probabilities = verify_classifier(model, out, x_test, y_test, LABELS)
    metrics |= artifacts.run_record(model, history, seconds, train=len(x_train), test=len(x_test)) | record
    samples = partial(plots.sample_predictions, x_test, y_test, probabilities.argmax(axis=1))
    artifacts.save_run(
        args.out, out, name=NAME, version=version, task=tasks.DIGIT, runtime="digit-onnx",
        files=files, metrics=metrics, command=command, data=args.data,
        summary=f"test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f}",
        history=history, labels=LABELS, extra_plots={"sample_predictions": samples},
    )  # fmt: skip
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.training_parser(
        __doc__, "mnist.npz, or a folder with mnist.npz or the IDX .gz files (default: download)",
        epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, validation_split=VALIDATION_SPLIT,
        patience=PATIENCE, augment=AUGMENT, limit=0, seed=SEED,
    )  # fmt: skip
    p.add_argument("--wide", action="store_true", help="Dense(128) and no third conv layer")
    p.add_argument(
        "--fine-tune", help="start from this model.keras (e.g. models/digit/1/model.keras), not from scratch"
    )
    outlier_exposure.add_flags(p, negatives.KINDS, "non-digits", NEGATIVES, NEGATIVES_COUNT, OE_WEIGHT)
    p.add_argument("--styled", type=int, default=STYLED, help="training digits added as users send them")
    p.add_argument(
        "--pen-digits", type=int, default=PEN_DIGITS,
        help="digits drawn with a pen in Hershey's training fonts (the pen negatives' style), added as training digits",
    )  # fmt: skip
    p.add_argument(
        "--font-dir", action="append",
        help="a folder of .ttf/.otf fonts to draw letters in, its subfolders being families (repeatable; default: "
        f"{' and '.join(map(str, negatives.FONT_ROOTS))}); the held-out families are never drawn",
    )  # fmt: skip
    p.add_argument("--fashion-data", default=FASHION_DATA, help="Fashion-MNIST (its training part) for negatives")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_digit", argv))


if __name__ == "__main__":
    main()
