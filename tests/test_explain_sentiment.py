"""POST /explain/sentiment: leave-one-word-out attributions through the served model, on the words as written."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from app.config import Settings
from app.families.explain_text import MAX_CHARS, OcclusionExplainer, without
from app.families.sentiment import SentimentRuntime
from app.registry import ModelRegistry
from tests.support.imdb_like import review
from tests.support.paths import COMMITTED_MODELS, SHARED_DATA
from tests.support.service import assert_error, serve
from tests.support.word_faithfulness import hide_words

SST2 = SHARED_DATA / "sst2" / "validation.tsv"


def explainer(models_dir: Path, name: str = "lstm") -> OcclusionExplainer:
    registry = ModelRegistry(Settings(models_dir=models_dir, models=[name]))
    registry.load_all()
    return OcclusionExplainer(registry.runtime(name, SentimentRuntime))


def test_attributions_are_the_score_without_each_word_as_written() -> None:
    text = "Not bad at all, it's  a <b>GREAT</b> film!"
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        body = client.post("/explain/sentiment", json={"text": text, "model": "lstm"}).json()
        whole = client.post("/predict/sentiment", json={"text": text, "model": "lstm"}).json()["results"][0]
        great = next(w for w in body["words"] if w["word"] == "GREAT")
        cut = without(text, great["start"], great["end"])
        rest = client.post("/predict/sentiment", json={"text": cut, "model": "lstm"}).json()["results"][0]
    assert [w["word"] for w in body["words"]] == ["Not", "bad", "at", "all", "it's", "a", "b", "GREAT", "b", "film"]
    assert all(text[w["start"] : w["end"]] == w["word"] for w in body["words"])
    assert body["label"] == whole["label"] and body["score"] == pytest.approx(whole["score"], abs=1e-6)
    assert great["attribution"] == pytest.approx(whole["score"] - rest["score"], abs=1e-4)
    assert great["attribution"] > 0 and body["method"] == "occlusion" and body["model"]["name"] == "lstm"


def test_errors_match_predict_and_long_texts_are_refused() -> None:
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        assert_error(client.post("/explain/sentiment", json={"text": "  "}), 422, "invalid_input")
        assert_error(client.post("/explain/sentiment", json={"text": "ok", "model": "resnet"}), 404, "model_not_found")
        long = client.post("/explain/sentiment", json={"text": "a" * (MAX_CHARS + 1), "model": "lstm"})
        assert_error(long, 422, "invalid_input")
        no_words = client.post("/explain/sentiment", json={"text": "!!!", "model": "lstm"}).json()
        assert no_words["words"] == [] and no_words["label"] in ("POSITIVE", "NEGATIVE")
        assert_error(client.post("/explain/sentiment", content=b"x", headers={"content-type": "text/plain"}), 415,
                     "unsupported_media_type")  # fmt: skip


def test_hiding_the_top_3_words_hurts_more_than_random_on_the_session_model(lstm_models_dir: Path) -> None:
    rng = random.Random(3)
    texts = [review(rng, label) for label in (0, 1) for _ in range(30)]
    top, rand = hide_words(explainer(lstm_models_dir), texts)
    print(f"session LSTM, {len(texts)} generated reviews: predicted class probability {top:.3f} (top 3 words "
          f"left out) vs {rand:.3f} (3 random words)")  # fmt: skip
    assert top < rand - 0.05


@pytest.mark.real_data
@pytest.mark.skipif(not SST2.exists(), reason="../shared/data/sst2 is absent")
@pytest.mark.parametrize("name", ["lstm", "minilm"])
def test_on_sst2_sentences_hiding_the_top_3_words_hurts_more_than_random(name: str) -> None:
    with SST2.open() as f:
        sentences = [row["sentence"] for row in csv.DictReader(f, delimiter="\t") if len(row["sentence"].split()) >= 8]
    texts = sentences[:300]
    top, rand = hide_words(explainer(COMMITTED_MODELS, name), texts)
    print(f"SST-2 validation, {len(texts)} sentences of 8+ words, committed {name}: predicted class probability "
          f"{top:.3f} (top 3 words left out) vs {rand:.3f} (3 random words)")  # fmt: skip
    assert top < rand - 0.05
