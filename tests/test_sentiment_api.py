"""POST /predict/sentiment on a real LSTM artifact trained in this session by training/train_lstm_sentiment.py.

The artifact is trained on a generated corpus of short positive and negative reviews (IMDb-like: HTML line
breaks, punctuation, mixed case), through the script's real main(); every success and error status of the
route is then checked in-process (ASGI + lifespan) and against a real uvicorn server.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.config import Settings
from app.manifest import read_manifest
from tests.support.imdb_like import FILLER, NEGATIVE, POSITIVE
from tests.support.service import assert_error, serve

MAX_TEXTS, MAX_CHARS = Settings().max_texts, Settings().max_text_chars  # the defaults the clients below run with


@pytest.fixture(scope="module", params=["asgi", "uvicorn"])
def client(request: pytest.FixtureRequest, lstm_models_dir: Path):
    with serve(request.param, Settings(models_dir=lstm_models_dir)) as c:
        yield c


def post(client, body) -> object:
    return client.post("/predict/sentiment", json=body)


# The training run and its artifact.


def test_training_writes_a_complete_artifact(lstm_models_dir: Path) -> None:
    [entry] = read_manifest(lstm_models_dir).models
    assert (entry.name, entry.version, entry.runtime) == ("lstm", "1", "lstm-onnx")
    assert entry.task == "text-classification/sentiment" and "train_lstm_sentiment" in entry.command
    folder = lstm_models_dir / entry.path
    assert {"onnx", "tokenizer", "metrics", "training_curves", "confusion_matrix"} <= set(entry.files)
    assert all((folder / name).is_file() for name in entry.files.values())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9 and metrics["onnx_test_accuracy"] == metrics["test_accuracy"]
    assert metrics["onnx_max_abs_diff"] < 1e-4 and metrics["onnx_padding_max_abs_diff"] < 1e-4
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["test_examples"] == 200
    assert metrics["train_examples"] + metrics["validation_examples"] == 600
    assert len(metrics["epochs"]) == 2 and all(1 <= n <= 4 for n in metrics["epochs"]) and metrics["libraries"]["keras"]
    # The artifact averages its two networks: its accuracy is not below the worse one's by more than chance.
    assert len(metrics["member_test_accuracies"]) == len(metrics["member_histories"]) == 2
    assert metrics["test_accuracy"] >= min(metrics["member_test_accuracies"]) - 0.02
    assert metrics["architecture"] == "ensemble2_bilstm16_max"
    vocabulary = json.loads((folder / "tokenizer.json").read_text())["vocabulary"]
    assert sorted(vocabulary) == sorted(POSITIVE + NEGATIVE + FILLER)  # lowercased, no "br", no punctuation


# Successes.


def test_model_is_ready_and_described(client) -> None:
    assert client.get("/health/ready").json()["models"]["lstm"] == "ready"
    info = client.get("/models/lstm").json()
    assert info["state"] == "ready" and info["task"] == "text-classification/sentiment"
    assert info["input"]["content_types"] == ["application/json"] and info["metrics"]["test_accuracy"] >= 0.9


def test_single_text(client) -> None:
    response = post(client, {"text": "A wonderful, brilliant film.<br /><br />I loved the ending!"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results", "model"} and body["model"] == {"name": "lstm", "version": "1"}
    [result] = body["results"]
    assert set(result) == {"label", "score", "truncated", "in_distribution", "ood_score", "ood_reason"}
    assert result["label"] == "POSITIVE" and 0.5 <= result["score"] <= 1 and result["truncated"] is False


def test_long_text_is_truncated_keeping_its_end(client) -> None:
    """The artifact reads at most 32 words (its max_length) and keeps the end, where reviews give the verdict."""
    opening, ending = "awful terrible boring dreadful " * 10, "the movie was great " * 8  # 40 words, then 32
    results = post(client, {"texts": [opening + ending, ending]}).json()["results"]
    assert [r["truncated"] for r in results] == [True, False]
    assert results[0]["label"] == "POSITIVE" and results[0]["score"] == pytest.approx(results[1]["score"], abs=1e-6)
    assert post(client, {"text": opening}).json()["results"][0]["label"] == "NEGATIVE"


def test_batch_keeps_order_and_matches_single_predictions(client) -> None:
    texts = ["An awful, boring movie. The worst plot.", "Superb!", "It was dull and pathetic", "Great story, moving."]
    body = post(client, {"texts": texts, "model": "lstm"}).json()
    assert [r["label"] for r in body["results"]] == ["NEGATIVE", "POSITIVE", "NEGATIVE", "POSITIVE"]
    assert all((r["score"] >= 0.5) == (r["label"] == "POSITIVE") for r in body["results"])
    # The batch is padded to its longest text; padding is masked, so each score equals the text sent alone.
    for text, result in zip(texts, body["results"], strict=True):
        assert post(client, {"text": text}).json()["results"][0]["score"] == pytest.approx(result["score"], abs=1e-5)


def test_limits_are_inclusive(client) -> None:
    long_text = ("great " * (MAX_CHARS // 6 + 1))[:MAX_CHARS]
    response = post(client, {"texts": [long_text] + ["fine"] * (MAX_TEXTS - 1)})
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == MAX_TEXTS


@pytest.mark.parametrize("mode", ["asgi", "uvicorn"])
def test_limits_come_from_settings(lstm_models_dir: Path, mode: str) -> None:
    with serve(mode, Settings(models_dir=lstm_models_dir, max_texts=2, max_text_chars=10)) as client:
        assert post(client, {"texts": ["great", "0123456789"]}).status_code == 200
        error = assert_error(post(client, {"texts": ["a", "b", "c"]}), 422, "invalid_input")
        assert error["detail"]["max_texts"] == 2
        error = assert_error(post(client, {"text": "01234567890"}), 422, "invalid_input")
        assert error["detail"] == {"field": "text", "index": 0, "chars": 11, "max_chars": 10}


def test_text_without_words_still_gets_a_prediction(client) -> None:
    [result] = post(client, {"text": "!!! :-) ???"}).json()["results"]
    assert 0 <= result["score"] <= 1


# Errors, all in the shared error schema.


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": ""}, "empty"),
        ({"text": " \n\t "}, "empty"),
        ({"texts": ["good", "  "]}, "texts[1]"),
        ({"texts": []}, "empty"),
        ({"text": "good", "texts": ["good"]}, "exactly one"),
        ({}, "exactly one"),
        ({"model": "lstm"}, "exactly one"),
        ({"texts": ["good"] * (MAX_TEXTS + 1)}, f"at most {MAX_TEXTS}"),
        ({"text": "a" * (MAX_CHARS + 1)}, f"{MAX_CHARS} characters"),
        ({"texts": ["good", "b" * (MAX_CHARS + 1)]}, "texts[1]"),
        ({"text": "good", "model": "digit"}, "does not do text-classification/sentiment"),
    ],
)
def test_invalid_requests_are_422(client, body: dict, message: str) -> None:
    error = assert_error(post(client, body), 422, "invalid_input")
    assert message in error["message"]


@pytest.mark.parametrize("body", [{"text": 5}, {"texts": "good"}, {"texts": [1, 2]}, {"text": "x", "extra": 1}, []])
def test_wrong_types_and_unknown_fields_are_422(client, body) -> None:
    error = assert_error(post(client, body), 422, "invalid_input")
    assert isinstance(error["detail"], list) and error["detail"][0]["loc"][0] == "body"


def test_invalid_json_is_400_malformed_body(client) -> None:
    response = client.post(
        "/predict/sentiment", content=b'{"text": "good', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "malformed_body")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_non_json_content_type_is_415(client, content_type: str) -> None:
    response = client.post("/predict/sentiment", content=b"text=good", headers={"content-type": content_type})
    error = assert_error(response, 415, "unsupported_media_type")
    assert error["detail"] == {"content_type": content_type}


def test_unknown_model_is_404(client) -> None:
    error = assert_error(post(client, {"text": "good", "model": "gpt-5"}), 404, "model_not_found")
    assert "lstm" in error["detail"]["known"]


def test_known_model_not_installed_is_503(client) -> None:
    error = assert_error(post(client, {"text": "good", "model": "distilbert"}), 503, "model_not_installed")
    assert "train_transformer" in error["detail"]["install"]


def test_body_over_the_upload_limit_is_413(client) -> None:
    assert_error(post(client, {"texts": ["good " * 1000] * 1000}), 413, "payload_too_large")


def test_get_is_405(client) -> None:
    assert_error(client.get("/predict/sentiment"), 405, "method_not_allowed")


def test_overloaded_is_429(lstm_models_dir: Path) -> None:
    with serve("asgi", Settings(models_dir=lstm_models_dir)) as client:  # the in-flight counter is in-process
        limiter = client.app.state.limiter
        limiter.in_flight = limiter.limit
        assert_error(post(client, {"text": "good"}), 429, "overloaded")
        limiter.in_flight = 0
        assert post(client, {"text": "good"}).status_code == 200


def test_openapi_documents_the_route(client) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/predict/sentiment"]["post"]
    assert "application/json" in operation["requestBody"]["content"]
    assert {"200", "404", "415", "422", "503"} <= set(operation["responses"])
    variants = spec["components"]["schemas"]["SentimentRequest"]["oneOf"]  # exactly one of text and texts
    options = {"model", "reject_ood"}
    assert [set(v["properties"]) for v in variants] == [{"text", *options}, {"texts", *options}]


@pytest.mark.parametrize("mode", ["asgi", "uvicorn"])
def test_artifact_that_fails_to_load_is_503(tmp_path: Path, lstm_models_dir: Path, mode: str) -> None:
    broken = tmp_path / "models"
    shutil.copytree(lstm_models_dir, broken)
    (broken / "lstm" / "1" / "tokenizer.json").unlink()
    with serve(mode, Settings(models_dir=broken)) as c:
        assert c.get("/health/ready").status_code == 503
        error = assert_error(post(c, {"text": "good"}), 503, "model_not_ready")  # the default model is lstm
        assert "reason" not in error["detail"] and "tokenizer.json" not in error["message"]
        assert_error(post(c, {"text": "good", "model": "lstm"}), 503, "model_not_ready")
