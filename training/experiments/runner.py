"""Run the seed's ablation studies on the MNIST CNN and write a report per study.

    python -m training.experiments --list
    python -m training.experiments dropout --data ../shared/data/mnist/mnist.npz
    python -m training.experiments all --data ../shared/data/mnist/mnist.npz --seeds 0 1 2
    python -m training.experiments depth --train-limit 2000 --epochs 1 --out /tmp/experiments   # a smoke run

Each study writes docs/experiments/<study>/: results.csv (one row per setting and seed), summary.csv (per
setting: mean and sample standard deviation over the seeds), history.csv (per epoch), README.md (the table of
means ± sd, command, subsample, seconds, and the reading kept from the previous README), and PNG plots with
error bars over the seeds. The grids are in studies.py, the networks in models.py, the reports in report.py.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training.common.artifacts import training_command
from training.common.mnist_data import load_mnist
from training.common.mnist_training import to_input
from training.experiments import models, report, tracking
from training.experiments.studies import STUDIES, Config, Study

# Defaults. Each is a command-line flag too. Sized for 2 shared CPU cores: each study takes a few minutes.
TRAIN_LIMIT = 10_000  # training images, drawn at random from MNIST's 60,000; the full set takes ~6x longer per epoch
VAL_LIMIT = 2_000  # validation images, drawn from the rest of the 60,000 (never the test set)
TEST_LIMIT = 0  # test images (the first N of the 10,000); 0: all. Evaluating all 10,000 takes ~1 s
SEEDS = (0,)  # training seeds (weights, shuffling, dropout); add more to see the spread. The subsample is fixed
DATA_SEED = 0  # which images are drawn: the same for every seed and setting, so settings differ only in training
OUT = Path("docs/experiments")  # one folder per study
MLFLOW_URI = "file:./mlruns"  # --mlflow logs here: a local file store; browse with `mlflow ui --backend-store-uri ...`
GRADIENT_DRAWS = 16  # gradient_noise: minibatches per variance estimate; the estimate is good to about +-35%
PROBE_EXAMPLES = 256  # layer_gradients: training images the per-layer gradient norms are measured on


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def describe(self) -> str:
        return (
            f"{len(self.x_train):,} training and {len(self.x_val):,} validation images drawn from MNIST's training "
            f"set (data seed {DATA_SEED}), {len(self.x_test):,} test images; no augmentation"
        )


def load_data(path: str | None, train_limit: int, val_limit: int, test_limit: int) -> Data:
    (x, y), (x_test, y_test) = load_mnist(path)
    if train_limit + val_limit > len(x):
        raise ValueError(f"--train-limit + --val-limit is {train_limit + val_limit}, the data has {len(x)} images")
    order = np.random.default_rng(DATA_SEED).permutation(len(x))
    train, val = order[:train_limit], order[train_limit : train_limit + val_limit]
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return Data(to_input(x[train]), y[train], to_input(x[val]), y[val], to_input(x_test), y_test)


def gradients(model, x: np.ndarray, y: np.ndarray, variables: list) -> list:
    """Gradient of the mean cross-entropy (no regulariser, dropout off) on (x, y) for each variable."""
    import keras
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=False))
        loss = tf.reduce_mean(loss)
    return [g.numpy() for g in tape.gradient(loss, variables)]


def flat_gradient(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.concatenate([g.ravel() for g in gradients(model, x, y, model.trainable_variables)]).astype(np.float64)


def gradient_noise(model, data: Data, batch_size: int, seed: int) -> dict[str, float]:
    """How noisy a minibatch gradient of this size is, at the model's current weights.

    grad_var: E|g_B - G|^2, the variance of a minibatch gradient g_B around the full training-set gradient G,
    from GRADIENT_DRAWS random minibatches (without replacement, so scaled by (N-1)/(N-B) to the i.i.d. value).
    noise_scale: B * grad_var / |G|^2, McCandlish et al.'s "simple noise scale" B_simple = tr(Sigma) / |G|^2:
    batches much smaller than it are dominated by noise, much larger ones waste computation.
    """
    n = len(data.x_train)
    # The exact training-set gradient, as the size-weighted mean of the gradients of chunks of 1,000.
    parts = [(data.x_train[i : i + 1000], data.y_train[i : i + 1000]) for i in range(0, n, 1000)]
    full = sum(flat_gradient(model, x, y) * len(x) for x, y in parts) / n
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(GRADIENT_DRAWS):
        pick = rng.choice(n, size=min(batch_size, n - 1), replace=False)
        draws.append(flat_gradient(model, data.x_train[pick], data.y_train[pick]))
    deviations = np.stack(draws) - full
    variance = float((deviations**2).sum(axis=1).mean()) * (n - 1) / (n - min(batch_size, n - 1))
    norm_sq = float((full**2).sum())
    return {"grad_var": variance, "grad_norm_sq": norm_sq, "noise_scale": batch_size * variance / norm_sq}


def layer_gradient_norms(model, data: Data) -> list[tuple[str, float]]:
    """(layer name, |gradient of its kernel|) for every layer with a kernel, input to output."""
    layers = models.weight_layers(model)
    x, y = data.x_train[:PROBE_EXAMPLES], data.y_train[:PROBE_EXAMPLES]
    grads = gradients(model, x, y, [layer.kernel for layer in layers])
    return [(layer.name, float(np.linalg.norm(g))) for layer, g in zip(layers, grads, strict=True)]


def run_setting(study: Study, label: str, config: Config, seed: int, data: Data) -> dict:
    """Train one setting with one seed; returns its results row, per-epoch history and measurements."""
    import keras

    keras.utils.set_random_seed(seed)
    model = models.build(config)
    model.compile(optimizer=models.optimizer(config), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = []
    if config.patience:
        callbacks.append(keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True))
    row: dict = {"study": study.name, "setting": label, "seed": seed, **asdict(config)}
    layer_norms: list[dict] = []
    if study.measure == "gradient_noise":
        row.update({f"{k}_init": v for k, v in gradient_noise(model, data, config.batch_size, seed).items()})
    if study.measure == "layer_gradients":
        layer_norms += [{"when": "init", "layer": n, "grad_norm": g} for n, g in layer_gradient_norms(model, data)]

    started = time.time()
    history = model.fit(
        data.x_train,
        data.y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(data.x_val, data.y_val),
        callbacks=callbacks,
        verbose=0,
    ).history
    seconds = time.time() - started
    test_loss, test_accuracy = model.evaluate(data.x_test, data.y_test, batch_size=1000, verbose=0)
    train_loss, train_accuracy = model.evaluate(data.x_train, data.y_train, batch_size=1000, verbose=0)
    val_loss, val_accuracy = model.evaluate(data.x_val, data.y_val, batch_size=1000, verbose=0)

    if study.measure == "gradient_noise":
        row.update({f"{k}_end": v for k, v in gradient_noise(model, data, config.batch_size, seed).items()})
    if study.measure == "layer_gradients":
        layer_norms += [{"when": "end", "layer": n, "grad_norm": g} for n, g in layer_gradient_norms(model, data)]
    row.update(
        epochs_run=len(history["loss"]),
        best_epoch=int(np.argmin(history["val_loss"])) + 1,
        train_accuracy=train_accuracy,
        val_accuracy=val_accuracy,
        test_accuracy=test_accuracy,
        train_loss=train_loss,
        val_loss=val_loss,
        test_loss=test_loss,
        parameters=int(model.count_params()),
        seconds=round(seconds, 1),
    )
    epochs = [
        {"setting": label, "seed": seed, "epoch": i + 1, **{k: float(v[i]) for k, v in history.items()}}
        for i in range(len(history["loss"]))
    ]
    for entry in layer_norms:
        entry.update(setting=label, seed=seed)
    return {"row": row, "history": epochs, "layer_gradients": layer_norms}


def run_study(study: Study, data: Data, args: argparse.Namespace, command: str) -> Path:
    out = Path(args.out) / study.name
    out.mkdir(parents=True, exist_ok=True)
    tracker = tracking.MlflowTracker(args.mlflow_uri, study.name) if args.mlflow else None
    started = time.time()
    runs = []
    for label, config in study.configs(args.epochs):
        for seed in args.seeds:
            run = run_setting(study, label, config, seed, data)
            r = run["row"]
            print(
                f"{study.name}: {label}, seed {seed}: test accuracy {r['test_accuracy']:.4f} "
                f"(train {r['train_accuracy']:.4f}, val {r['val_accuracy']:.4f}), "
                f"{r['epochs_run']} epochs, {r['seconds']} s",
                flush=True,
            )
            if tracker:
                tracker.log_run(run, config)
            runs.append(run)
    seconds = time.time() - started
    report.write(study, runs, out, command=command, data=data.describe(), seeds=args.seeds, seconds=seconds)
    if tracker:
        tracker.log_study(out)
    print(f"{study.name}: wrote {out} in {seconds:.0f} s")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", nargs="?", choices=[*STUDIES, "all"], help="a study, or all of them one after another")
    p.add_argument("--list", action="store_true", help="print the studies and their settings, then exit")
    p.add_argument("--data", help="mnist.npz, or a folder with mnist.npz or the IDX .gz files (default: download)")
    p.add_argument("--out", type=Path, default=OUT, help=f"reports go to OUT/<study>/ (default: {OUT})")
    p.add_argument("--train-limit", type=int, default=TRAIN_LIMIT, help=f"training images (default: {TRAIN_LIMIT})")
    p.add_argument("--val-limit", type=int, default=VAL_LIMIT, help=f"validation images (default: {VAL_LIMIT})")
    p.add_argument("--test-limit", type=int, default=TEST_LIMIT, help="test images; 0: all 10,000 (default)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: each study's own, see --list)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help=f"training seeds (default: {SEEDS})")
    p.add_argument("--mlflow", action="store_true", help="also log every run to MLflow (pip install mlflow-skinny)")
    p.add_argument("--mlflow-uri", default=MLFLOW_URI, help=f"MLflow tracking URI (default: {MLFLOW_URI})")
    args = p.parse_args(argv)
    if not args.list and not args.study:
        p.error("name a study or all (--list shows them)")
    if (
        args.train_limit < 1
        or args.val_limit < 1
        or args.test_limit < 0
        or (args.epochs is not None and args.epochs < 1)
    ):
        p.error("--train-limit, --val-limit and --epochs must be positive, --test-limit at least 0")
    return args


def describe_studies() -> str:
    lines = []
    for study in STUDIES.values():
        lines.append(f"{study.name} ({study.epochs} epochs): {study.question}")
        lines += [
            f"    {s['label']}: {', '.join(f'{k}={v}' for k, v in s.items() if k != 'label')}" for s in study.settings
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Path]:
    args = parse_args(argv)
    if args.list:
        print(describe_studies())
        return []
    if args.mlflow:
        tracking.require_mlflow()  # fail before hours of training, not after
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow C++ start-up and grappler noise
    data = load_data(args.data, args.train_limit, args.val_limit, args.test_limit)
    command = training_command("training.experiments", argv)
    studies = list(STUDIES.values()) if args.study == "all" else [STUDIES[args.study]]
    return [run_study(study, data, args, command) for study in studies]
