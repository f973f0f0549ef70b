"""POST /explain/sentiment: leave-one-word-out attributions through the served model, on the words as written."""

from __future__ import annotations

import csv
import json
import random
import re
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.core.registry import ModelRegistry
from app.families.explain_text import MAX_CHARS, OcclusionExplainer, without
from app.families.sentiment import SentimentRuntime
from tests.support.imdb_like import review
from tests.support.paths import COMMITTED_MODELS, SHARED_DATA
from tests.support.raw_http import upload
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


def test_the_explanation_says_whether_the_text_is_like_the_training_reviews_as_the_prediction_does() -> None:
    verdict = ("in_distribution", "ood_score", "ood_reason")
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS)) as client:
        for text, expected in (("A moving, beautifully shot film.", True), ("asdf qwerty zxcv", False)):
            body = client.post("/explain/sentiment", json={"text": text, "model": "lstm"}).json()
            whole = client.post("/predict/sentiment", json={"text": text, "model": "lstm"}).json()["results"][0]
            assert whole["in_distribution"] is expected
            assert {k: body[k] for k in verdict} == {k: whole[k] for k in verdict}


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


LONGEST = "a " * (MAX_CHARS // 2)  # 1,000 characters, 500 words: 500 MiniLM inputs of 500 tokens each before
INPUTS, CALLS = 64, 8  # what one explanation may cost at most: 64 model inputs (63 left out) in calls of 8


def minilm_calls(client) -> tuple[float, float]:
    """(model calls, inputs) MiniLM has run in this server, from /metrics."""
    text = client.get("/metrics").text
    calls = re.search(r'deepserve_inference_seconds_count\{model="minilm"\} (\S+)', text)
    inputs = re.search(r'deepserve_batch_size_sum\{model="minilm"\} (\S+)', text)
    return (float(calls.group(1)), float(inputs.group(1))) if calls and inputs else (0.0, 0.0)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory):
    """A real uvicorn on the committed models (MiniLM is the default sentiment model)."""
    data = tmp_path_factory.mktemp("data")
    with serve("uvicorn", Settings(models_dir=COMMITTED_MODELS, models=["minilm"], data_dir=data)) as client:
        yield client


@pytest.mark.slow
def test_a_1000_character_text_costs_at_most_64_model_inputs(minilm) -> None:
    """500 words are left out in 63 runs of 8: 64 inputs in 8 calls of 8, counted in /metrics (before: 501 inputs
    in one opaque call, 56-228 s of CPU); every word still has an attribution, its run's."""
    calls, inputs = minilm_calls(minilm)
    body = minilm.post("/explain/sentiment", json={"text": LONGEST}, timeout=120).json()
    after_calls, after_inputs = minilm_calls(minilm)
    assert after_inputs - inputs == INPUTS and after_calls - calls == CALLS
    assert len(body["words"]) == 500 and body["words_per_run"] == 8
    runs = [body["words"][i : i + 8] for i in range(0, 500, 8)]
    assert all(len({w["attribution"] for w in run}) == 1 for run in runs)
    short = minilm.post("/explain/sentiment", json={"text": "not bad at all"}).json()
    assert short["words_per_run"] == 1 and [w["word"] for w in short["words"]] == ["not", "bad", "at", "all"]


@pytest.mark.slow
def test_an_explanation_whose_client_left_stops_within_one_model_call(minilm) -> None:
    """The client hangs up after the explanation's first model call: the server stops before its next call
    (checked between calls) and logs a 499 (before, it ran all its calls for nobody and logged a 200)."""
    calls, _ = minilm_calls(minilm)
    body = json.dumps({"text": LONGEST}).encode()
    sock = upload(minilm.base_url.port, "/explain/sentiment", "application/json", len(body), body)
    deadline = time.monotonic() + 60
    while (seen := minilm_calls(minilm)[0] - calls) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    sock.close()
    left = 'deepserve_requests_total{method="POST",route="/explain/sentiment",status="499"} 1.0'
    while left not in (metrics := minilm.get("/metrics").text) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left in metrics
    time.sleep(0.5)  # a call that was running when it left ends; no other starts
    made = minilm_calls(minilm)[0] - calls
    assert made <= seen + 1 < CALLS, (seen, made)


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
