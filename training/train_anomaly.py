"""Train a convolutional autoencoder anomaly scorer on NAB's nyc_taxi and write models/anomaly/<version>/.

    python -m training.train_anomaly                                  # downloads the NAB CSV and labels
    python -m training.train_anomaly --data ../shared/data/nab        # a local NAB root (data/ and labels/)
    python -m training.train_anomaly --data series.csv --eval-seeds 1 --no-compare
    python -m training.train_anomaly --config seed                    # the keras-io baseline, for comparison

The autoencoder reconstructs windows of the normalised series; a point's anomaly score is its squared
reconstruction error averaged over the windows covering it, smoothed (app/families/anomaly/scoring.py, shared with
serving). The alarm threshold is set without labels: the highest score in NAB's probationary period (the first
15% of the series). The labels are used only to report how many labelled windows were found and how many
false-alarm regions were raised. The artifact holds the Keras model, the ONNX export the service runs,
config.json (everything scoring needs), metrics.json and plots.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.families import tasks
from app.families.anomaly.scoring import alarm_regions, normalise, score_series, sliding_windows
from training.common import artifacts
from training.common.export import OnnxModel, export_onnx
from training.common.nab_data import load_nab_series, load_nab_windows, window_mask

# Defaults. Each is a command-line flag too; a configuration's own values apply where a flag is not given.
CONFIG = "bottleneck"  # "bottleneck" (the default model) or "seed" (the keras-io baseline, kept for comparison)
CONFIGS: dict[str, dict[str, Any]] = {
    # A week of 30-minute points (336) holds a full weekday/weekend cycle, so a holiday or a storm day breaks
    # the pattern of its own window instead of looking like an ordinary weekend. A 4-number code between the
    # conv encoder and decoder can describe a typical week (level, weekday/weekend shape) but not the few odd
    # days, so those are reconstructed badly even though they are in the training data. With 8 or 16 numbers
    # the model learned Thanksgiving, Christmas and the blizzard too and found only 2 of the 5 windows.
    # Smoothing over 12 points (6 hours) turns isolated noisy half-hours into nothing and a disrupted day into
    # one region. In trials with 3 seeds, 12 gave 5/5 windows and 0 false alarms each; 48 (a day) gave 0-2 false
    # alarms; none (1) found only 2-3 windows, because single noisy half-hours in July set a high threshold.
    "bottleneck": {"window": 336, "code_size": 4, "smoothing": 12, "dropout": 0.0, "epochs": 30},
    # The keras-io "Timeseries anomaly detection using an Autoencoder" model: 288-step windows, a conv
    # encoder whose output (72 steps x 8 channels) holds twice as many numbers as its input, Dropout 0.2,
    # 50 epochs with early stopping. No smoothing, as in the example.
    "seed": {"window": 288, "code_size": 0, "smoothing": 1, "dropout": 0.2, "epochs": 50},
}
TRAIN_STRIDE = 2  # points between training windows: 2 halves the epoch time of stride 1, with equal results in trials
STRIDE = 1  # points between scoring windows; every point is covered whatever the stride (app/families/anomaly)
BATCH_SIZE = 128
LEARNING_RATE = 1e-3  # Adam's default; halved on plateaus by the callback below
PATIENCE = 5  # epochs without val_loss improvement before stopping (best weights are restored)
VALIDATION_EVERY = 10  # every 10th block of windows is validation: 10% spread over the whole series
VALIDATION_BLOCK = 48  # consecutive window starts per block (a day of 30-minute points)
PROBATION = 0.15  # NAB's probationary period: the first 15% of the series, where the threshold is set
THRESHOLD_MARGIN = 1.0  # threshold = margin x the highest smoothed score in the probationary period
EVAL_SEEDS = 3  # the configuration is trained and evaluated with seeds seed, seed+1, ...; the first is saved
THREADS = 2  # TensorFlow intra-op threads: the machine has 2 cores shared with other work
SEED = 42
SERIES = "realKnownCause/nyc_taxi.csv"
NAME = "anomaly"


def build_model(config: str, window: int, code_size: int = 4, dropout: float = 0.0):
    """The bottleneck autoencoder, or the keras-io seed model; both map [batch, window, 1] to the same shape."""
    import keras
    from keras import layers

    halvings = 2 if config == "seed" else 3
    if window % 2**halvings:
        raise ValueError(f"--window must be a multiple of {2**halvings} for the {config} encoder, got {window}")
    inputs = keras.Input((window, 1), name="window")
    if config == "seed":
        x = layers.Conv1D(16, 7, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Dropout(dropout)(x)
        x = layers.Conv1D(8, 7, strides=2, padding="same", activation="relu")(x)
        x = layers.Conv1DTranspose(8, 7, strides=2, padding="same", activation="relu")(x)
        x = layers.Dropout(dropout)(x)
        x = layers.Conv1DTranspose(16, 7, strides=2, padding="same", activation="relu")(x)
        outputs = layers.Conv1DTranspose(1, 7, padding="same", name="reconstruction")(x)
        return keras.Model(inputs, outputs, name="conv_autoencoder_seed")
    x = layers.Conv1D(16, 7, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv1D(32, 7, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1D(32, 7, strides=2, padding="same", activation="relu")(x)
    steps = window // 8
    x = layers.Flatten()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    # The code is linear: a ReLU here could switch code units off for whole seasons and waste the 4 numbers.
    x = layers.Dense(code_size, name="code")(x)
    x = layers.Dense(steps * 32, activation="relu")(x)
    x = layers.Reshape((steps, 32))(x)
    x = layers.Conv1DTranspose(32, 7, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1DTranspose(16, 7, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1DTranspose(16, 7, strides=2, padding="same", activation="relu")(x)
    # Linear output: normalised values are negative below the mean, which a ReLU could not reproduce.
    outputs = layers.Conv1D(1, 7, padding="same", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=f"conv_autoencoder_code{code_size}")


def split_windows(windows: np.ndarray, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) windows: every VALIDATION_EVERY-th block of VALIDATION_BLOCK consecutive windows.

    Keras' validation_split would take the last 10% of the windows, which on nyc_taxi is late January with the
    blizzard: early stopping would then watch how well the model reconstructs a labelled anomaly, and reward
    learning it. Blocks spread over the whole series give validation the same mix of seasons as training.
    Windows overlap, so validation shares points with neighbouring training windows: its loss tells whether
    training has converged, not how well the model generalises, which is all early stopping needs here.
    """
    # Short series get shorter blocks, so that there are always at least `validation_every` of them.
    size = max(1, min(args.validation_block, len(windows) // args.validation_every))
    block = np.arange(len(windows)) // size
    is_val = block % args.validation_every == args.validation_every - 1
    if is_val.all() or not is_val.any():
        raise ValueError("the series is too short to hold both training and validation windows")
    return windows[~is_val, :, None], windows[is_val, :, None]


def settings(args: argparse.Namespace, config: str) -> dict[str, Any]:
    """A configuration's values, overridden by the flags that were given (for the saved configuration only)."""
    chosen = dict(CONFIGS[config])
    if config == args.config:
        for key in ("window", "code_size", "smoothing", "dropout", "epochs"):
            if getattr(args, key) is not None:
                chosen[key] = getattr(args, key)
    return chosen


def fit_one(x: np.ndarray, config: str, seed: int, args: argparse.Namespace):
    """Train one model on the normalised series; returns (model, history dict, seconds, settings)."""
    import keras

    s = settings(args, config)
    keras.utils.set_random_seed(seed)
    windows, _ = sliding_windows(x, s["window"], args.train_stride)
    train_x, val_x = split_windows(windows, args)
    model = build_model(config, s["window"], s["code_size"], s["dropout"])
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss="mse", metrics=["mae"])
    callbacks = [
        keras.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, args.patience // 2), min_lr=1e-5),
    ]
    started = time.time()
    # The epoch count is an upper bound that matters: trained much longer, even the 4-number code starts to
    # fit the blizzard (in a trial, its peak over the threshold fell from 1.7x at 30 epochs to 1.2x at 55).
    history = model.fit(
        train_x,
        train_x,
        validation_data=(val_x, val_x),
        epochs=s["epochs"],
        batch_size=args.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=2 if args.verbose else 0,
    )
    return model, history.history, time.time() - started, s


def scoring_config(s: dict[str, Any], mean: float, std: float, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "window": int(s["window"]),
        "stride": int(args.stride),
        "mean": float(mean),
        "std": float(std),
        "smoothing": int(s["smoothing"]),
        "threshold": 0.0,  # set from the model's own scores by set_threshold
    }


def set_threshold(scores: np.ndarray, args: argparse.Namespace) -> float:
    """The label-free threshold: margin x the highest score in the probationary period (first 15%)."""
    n = max(1, int(len(scores) * args.probation))
    return float(args.threshold_margin * scores[:n].max())


def evaluate(flags: np.ndarray, timestamps: np.ndarray, windows: list | None) -> dict[str, Any]:
    """Labelled windows with >= 1 flagged point, and false-alarm regions (flagged runs outside every window)."""
    regions = alarm_regions(flags)
    result: dict[str, Any] = {"alarm_regions": len(regions), "flagged_points": int(flags.sum())}
    if windows is None:
        return result
    inside = window_mask(timestamps, windows)
    detected = [bool(flags[(timestamps >= a) & (timestamps <= b)].any()) for a, b in windows]
    false_alarms = [(a, b) for a, b in regions if not inside[a : b + 1].any()]
    result.update(
        windows_detected=int(sum(detected)),
        windows_total=len(windows),
        false_alarm_regions=len(false_alarms),
        detected_per_window={f"{a} .. {b}": d for (a, b), d in zip(windows, detected, strict=True)},
        false_alarm_spans=[f"{timestamps[a]} .. {timestamps[b]}" for a, b in false_alarms],
    )
    return result


def keras_reconstruct(model):
    return lambda w: model.predict(w, batch_size=1024, verbose=0)


def run_seed(values, timestamps, windows, mean, std, config, seed, args) -> tuple[Any, dict, dict, dict[str, Any]]:
    """Train, set the threshold and evaluate one (configuration, seed); returns model, history, config, result."""
    x = normalise(values, mean, std)
    model, history, seconds, s = fit_one(x, config, seed, args)
    cfg = scoring_config(s, mean, std, args)
    scores = score_series(values, keras_reconstruct(model), cfg)["scores"]
    cfg["threshold"] = set_threshold(scores, args)
    result = {
        "seed": seed,
        "threshold": cfg["threshold"],
        **evaluate(scores > cfg["threshold"], timestamps, windows),
        "epochs": len(history["loss"]),
        "seconds": round(seconds, 1),
        "best_val_loss": float(min(history["val_loss"])),
    }
    print(
        f"{config} seed {seed}: {result.get('windows_detected', '?')}/{result.get('windows_total', '?')} windows, "
        f"{result.get('false_alarm_regions', '?')} false-alarm regions, threshold {cfg['threshold']:.4f}, "
        f"{result['epochs']} epochs in {seconds:.0f}s",
        flush=True,
    )
    return model, history, cfg, result | {"scores": scores}


def summarise(config: str, settings_used: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    per_seed = [{k: v for k, v in r.items() if k != "scores"} for r in runs]
    summary: dict[str, Any] = {"config": config, "settings": settings_used, "per_seed": per_seed}
    if "windows_detected" in per_seed[0]:
        summary["windows_detected_min"] = min(r["windows_detected"] for r in per_seed)
        summary["false_alarm_regions_max"] = max(r["false_alarm_regions"] for r in per_seed)
        summary["meets_target"] = bool(summary["windows_detected_min"] >= 4 and summary["false_alarm_regions_max"] <= 3)
    return summary


def set_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # Already initialised by an earlier run in this process (tests): the first setting stays.
        pass


def compare(values, timestamps, windows, mean, std, s, results, args: argparse.Namespace) -> dict[str, Any]:
    """The saved configuration's per-seed results, and with --compare the other configuration's, summarised."""
    comparison = {"default" if args.config == CONFIG else args.config: summarise(args.config, s, results)}
    if args.compare:
        other = "seed" if args.config != "seed" else CONFIG
        seeds = [r["seed"] for r in results]
        other_runs = [run_seed(values, timestamps, windows, mean, std, other, seed, args)[3] for seed in seeds]
        comparison["seed" if other == "seed" else "default"] = summarise(other, settings(args, other), other_runs)
    return comparison


def export_checked(model, config: dict, out: Path, values: np.ndarray, timestamps, args) -> dict:
    """model.keras, model.onnx and config.json in `out`, then the series scored again through ONNX with the serving
    code path (so the metrics describe what the service will return): score_series's result."""
    # A fresh, uncompiled copy is saved: the trained model's file would also hold Adam's two moment estimates
    # per weight (3x the size), which neither serving nor fine-tuning from these weights needs.
    s = settings(args, args.config)
    plain = build_model(args.config, s["window"], s["code_size"], s["dropout"])
    plain.set_weights(model.get_weights())
    plain.save(out / "model.keras")
    export_onnx(model, out, sample=np.zeros((1, config["window"], 1), dtype="float32"), save_keras=False)
    onnx = OnnxModel(out / "model.onnx", threads=args.threads)
    served = score_series(values, onnx, config)
    config.update(
        {
            "input": {"name": onnx.input_name, "dtype": "float32", "shape": ["batch", config["window"], 1]},
            "threshold_rule": f"{args.threshold_margin} x max smoothed score over the first {args.probation:.0%}",
            "score": "mean squared reconstruction error over the windows covering a point, moving-average smoothed",
            "architecture": model.name,
            "series": args.series,
            "sampling_seconds": int(np.median(np.diff(timestamps).astype("int64"))),
        }
    )
    artifacts.write_json(out / "config.json", config)
    return served


def train(args: argparse.Namespace, command: str) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    set_threads(args.threads)

    timestamps, values = load_nab_series(args.data, args.series)
    windows = load_nab_windows(args.data, args.series, required=False if args.data else None)
    s = settings(args, args.config)
    if len(values) < 2 * s["window"]:
        raise ValueError(f"the series has {len(values)} points: at least 2 windows ({2 * s['window']}) are needed")
    # The whole series trains the model: anomalies are rare, and the 4-number code keeps them from being learned.
    mean, std = float(values.mean()), float(values.std())

    started = time.time()
    seeds = [args.seed + i for i in range(args.eval_seeds)]
    runs = [run_seed(values, timestamps, windows, mean, std, args.config, seed, args) for seed in seeds]
    model, history, config = runs[0][:3]
    results = [r[3] for r in runs]
    comparison = compare(values, timestamps, windows, mean, std, s, results, args)

    version, out = artifacts.new_artifact_dir(args.out, NAME, args.version)
    served = export_checked(model, config, out, values, timestamps, args)

    metrics = {
        **evaluate(served["flags"], timestamps, windows),
        "threshold": config["threshold"],
        "window": config["window"],
        "smoothing": config["smoothing"],
        "onnx_max_abs_score_diff": float(np.abs(served["scores"] - results[0]["scores"]).max()),
        "epochs": results[0]["epochs"],
        "seconds": results[0]["seconds"],
        "total_seconds": round(time.time() - started, 1),  # every seed of both configurations, and the export
        "parameters": int(model.count_params()),
        "architecture": model.name,
        "config": args.config,
        "seed": args.seed,
        "series_points": int(len(values)),
        "comparison": comparison,
        **artifacts.keras_run_record(history),
    }
    scores = partial(
        series_plot, timestamps, values, served["scores"], config["threshold"], windows, served["regions"],
        probation=args.probation,
    )  # fmt: skip
    found = f"{metrics['windows_detected']}/{metrics['windows_total']} windows, " if windows else ""
    artifacts.save_run(
        args.out, out, name=NAME, version=version, task=tasks.ANOMALY, runtime="anomaly-onnx",
        files={"onnx": "model.onnx", "keras": "model.keras", "config": "config.json"}, metrics=metrics,
        command=command, data=args.data, summary=f"{found}{metrics['alarm_regions']} alarm regions",
        history=history, extra_plots={"scores": scores},
    )  # fmt: skip
    return out


def series_plot(timestamps, values, scores, threshold, windows, regions, path: Path, probation: float) -> None:
    """The series and its scores, labelled windows shaded green, alarm regions marked red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = timestamps.astype("datetime64[m]").astype(object)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, height_ratios=[3, 2])
    top.plot(times, values, lw=0.5, color="tab:blue")
    bottom.plot(times, scores, lw=0.7, color="black", label="score")
    bottom.axhline(threshold, color="tab:red", lw=1, ls="--", label="threshold")
    bottom.set_yscale("log")
    for ax in (top, bottom):
        for a, b in windows or []:
            ax.axvspan(a.astype(object), b.astype(object), color="tab:green", alpha=0.2, lw=0)
    last = times[max(1, int(len(times) * probation)) - 1]
    bottom.axvspan(times[0], last, color="0.85", lw=0, label="threshold period")
    for a, b in regions:
        top.axvspan(times[a], times[b], color="tab:red", alpha=0.5, lw=0)
    top.set_title("series (green: labelled anomaly windows, red: alarm regions)")
    bottom.set_title("smoothed reconstruction error")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="NAB root folder (data/ and labels/) or one timestamp,value CSV (default: download)")
    p.add_argument("--series", default=SERIES, help="series inside the NAB root, as named in the labels file")
    artifacts.add_output_args(p)
    p.add_argument("--config", choices=sorted(CONFIGS), default=CONFIG, help="model configuration to save")
    p.add_argument("--window", type=int, help="points per window (default: the configuration's)")
    p.add_argument("--code-size", type=int, help="bottleneck Dense units (bottleneck configuration)")
    p.add_argument("--smoothing", type=int, help="moving-average width of the scores, in points")
    p.add_argument("--dropout", type=float)
    p.add_argument("--epochs", type=int, help="upper bound on epochs (default: the configuration's)")
    p.add_argument("--stride", type=int, default=STRIDE, help="points between scoring windows")
    p.add_argument("--train-stride", type=int, default=TRAIN_STRIDE, help="points between training windows")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--patience", type=int, default=PATIENCE)
    p.add_argument("--validation-every", type=int, default=VALIDATION_EVERY)
    p.add_argument("--validation-block", type=int, default=VALIDATION_BLOCK)
    p.add_argument("--probation", type=float, default=PROBATION, help="fraction of the series setting the threshold")
    p.add_argument("--threshold-margin", type=float, default=THRESHOLD_MARGIN)
    p.add_argument("--eval-seeds", type=int, default=EVAL_SEEDS, help="seeds to train and report (first is saved)")
    p.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True, help="also train the other config")
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--verbose", action="store_true", help="print Keras' per-epoch lines")
    args = p.parse_args(argv)
    for name in ("window", "code_size", "smoothing", "epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.stride, args.train_stride, args.batch_size, args.eval_seeds, args.threads, args.patience) < 1:
        raise ValueError("--stride, --train-stride, --batch-size, --eval-seeds, --threads and --patience must be >= 1")
    if args.validation_every < 2 or args.validation_block < 1:
        raise ValueError("--validation-every must be >= 2 and --validation-block >= 1")
    if not 0 < args.probation < 1:
        raise ValueError("--probation must be between 0 and 1")
    if args.threshold_margin <= 0:
        raise ValueError("--threshold-margin must be positive")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise ValueError("--dropout must be in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_anomaly", argv))


if __name__ == "__main__":
    main()
