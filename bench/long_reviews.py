"""Long reviews on a transformer sentiment model: keep the start, keep start and end (head+tail), or average chunks.

    python -m bench.long_reviews --imdb ../shared/data/imdb [--model minilm] [--reviews 400]

Scores the `--reviews` first IMDb test reviews (seeded shuffle) longer than the model's max_length word pieces
three ways with the served ONNX model: the first max_length - 2 pieces; the first `head` and the last ones
(what the service does, tokenization.json); and every max_length - 2 piece chunk, probabilities averaged. Prints
accuracy and milliseconds per review of each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from app.config import Settings
from app.families import open_runtime, transformer_text
from app.manifest import read_manifest
from bench.service import ROOT


def positive_probability(runtime, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    logits = runtime.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True))[:, runtime.positive]


def chunks(pieces: list[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] + each run of `size` word pieces + [SEP], padded to the longest."""
    body = pieces[1:-1]
    rows = [[pieces[0], *body[i : i + size], pieces[-1]] for i in range(0, len(body), size)]
    ids = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask


def main(argv: list[str] | None = None) -> None:
    from training.common.imdb_data import load_imdb

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imdb", required=True)
    p.add_argument("--model", default="minilm")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--reviews", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    settings = Settings(models_dir=args.models, inference_threads=args.threads)
    runtime = open_runtime(read_manifest(args.models).served()[args.model], settings)
    texts, labels = load_imdb(args.imdb)[1]
    long, y = [], []
    for i in np.random.default_rng(0).permutation(len(texts)):
        pieces = runtime.tokenizer.encode(texts[i]).ids
        if len(pieces) > runtime.max_length:
            long.append(pieces)
            y.append(labels[i])
        if len(long) == args.reviews:
            break
    size = runtime.max_length - 2
    ways = {
        "start only": lambda p: positive_probability(runtime, *one(transformer_text.head_tail(p, size + 2, size))),
        f"head+tail ({runtime.head} + {size - runtime.head})": lambda p: positive_probability(
            runtime, *one(transformer_text.head_tail(p, size + 2, runtime.head))
        ),
        "chunks averaged": lambda p: positive_probability(runtime, *chunks(p, size)).mean(keepdims=True),
    }
    print(f"{args.model} v{runtime.entry.version}: {len(long)} IMDb test reviews over {runtime.max_length} word pieces")
    for name, way in ways.items():
        started = time.perf_counter()
        scores = np.concatenate([way(p) for p in long])
        ms = 1000 * (time.perf_counter() - started) / len(long)
        accuracy = float(((scores >= 0.5) == np.array(y, dtype=bool)).mean())
        print(f"{name:<24} accuracy {accuracy:.4f}  {ms:6.1f} ms/review")


def one(pieces: list[int]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([pieces], dtype=np.int64)
    return ids, np.ones_like(ids)


if __name__ == "__main__":
    main()
