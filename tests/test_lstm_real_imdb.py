"""The committed LSTM sentiment model on real IMDb reviews (skipped when ../shared/data/imdb is absent).

- serving tokenises exactly as training did: the committed tokenizer.json is the vocabulary the training run
  builds from its own split of the training reviews, and the service's token ids equal the training ids;
- accuracy through HTTP on 2,000 IMDb test reviews is at least 0.88 (the full test set is in metrics.json).
"""

from __future__ import annotations

import argparse
import json
import random

import numpy as np
import pytest

from app.config import Settings
from app.families.lstm.runtime import LstmSentimentRuntime
from app.manifest import read_manifest
from tests.support.paths import COMMITTED_MODELS, SHARED_DATA
from tests.support.service import serve

IMDB = SHARED_DATA / "imdb"
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (IMDB / "test.jsonl.gz").is_file(), reason=f"{IMDB} is absent"),
]


@pytest.fixture(scope="module")
def imdb():
    from training.common.imdb_data import load_imdb

    return load_imdb(IMDB)


@pytest.fixture(scope="module")
def served_runtime() -> LstmSentimentRuntime:
    entry = read_manifest(COMMITTED_MODELS).served()["lstm"]
    runtime = LstmSentimentRuntime(entry, COMMITTED_MODELS / entry.path, Settings(models_dir=COMMITTED_MODELS))
    runtime.load()
    return runtime


def test_serving_token_ids_equal_training_token_ids(imdb, served_runtime: LstmSentimentRuntime) -> None:
    from training import train_lstm_sentiment as script

    (train_texts, _), (test_texts, _) = imdb
    # Rebuild the training-time tokenizer exactly as the committed run did: its recorded configuration and seed.
    config = json.loads(served_runtime.file("metrics").read_text())["config"]
    args = argparse.Namespace(**config)
    fit_idx, _ = script.split_indices(len(train_texts), args)
    trained = script.fit_tokenizer(train_texts, fit_idx, args)
    served = served_runtime.tokenizer
    assert served.vocabulary == trained.vocabulary
    assert (served.max_length, served.truncate) == (trained.max_length, trained.truncate)
    assert "br" not in served.vocabulary[:5000]  # <br /> is removed, not learnt as a word

    rng = random.Random(0)
    sample = rng.sample(train_texts, 250) + rng.sample(test_texts, 250)
    assert sum("<br />" in t for t in sample) > 100  # the sample exercises HTML removal
    rows = [trained.ids(text) for text in sample]  # what training fed the model
    assert max(map(len, rows)) == served.max_length  # and truncation
    for text, row in zip(sample, rows, strict=True):
        assert served.encode([text]).tolist() == [row]
    batch = served.encode(sample[:32])  # a served batch: the same ids, right-padded with 0
    for i, row in enumerate(rows[:32]):
        assert batch[i, : len(row)].tolist() == row and not batch[i, len(row) :].any()


@pytest.mark.slow
def test_committed_model_accuracy_over_http(imdb) -> None:
    _, (texts, labels) = imdb
    rng = random.Random(1)
    picked = rng.sample(range(len(texts)), 2000)
    picked.sort(key=lambda i: len(texts[i]))  # similar lengths per request: less padding, a faster test
    settings = Settings(models_dir=COMMITTED_MODELS, models=["lstm"])
    correct = 0
    with serve("uvicorn", settings) as client:
        for start in range(0, len(picked), 32):
            chunk = picked[start : start + 32]
            response = client.post("/predict/sentiment", json={"texts": [texts[i] for i in chunk], "model": "lstm"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model"]["name"] == "lstm"
            predicted = np.array([r["label"] == "POSITIVE" for r in body["results"]])
            correct += int((predicted == np.array([labels[i] == 1 for i in chunk])).sum())
    accuracy = correct / len(picked)
    assert accuracy >= 0.88, f"accuracy {accuracy:.4f} on 2,000 IMDb test reviews"
    # ... and the full 25,000-review evaluation its training run recorded meets the 89% target.
    metrics = read_manifest(COMMITTED_MODELS).served()["lstm"].metrics
    assert metrics["test_examples"] == 25000 and metrics["onnx_test_accuracy"] >= 0.89
