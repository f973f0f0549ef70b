"""The OpenAPI document states the limits the running app enforces (its Settings, its served model's window), and
documents every error status from ERROR_TABLE; each stated limit is checked against the service's real answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.errors import ERROR_TABLE
from app.http.main import create_app
from tests.support.paths import COMMITTED_MODELS
from tests.support.service import assert_error, serve


def sentiment_variants(doc: dict) -> dict[str, dict]:
    """SentimentRequest's oneOf, by its required field: {"text": {...}, "texts": {...}}."""
    variants = doc["components"]["schemas"]["SentimentRequest"]["oneOf"]
    return {variant["required"][0]: variant for variant in variants}


def test_sentiment_schema_states_this_apps_limits_and_the_service_holds_them(lstm_models_dir: Path) -> None:
    with serve("asgi", Settings(models_dir=lstm_models_dir, max_texts=3, max_text_chars=50)) as client:
        variants = sentiment_variants(client.get("/openapi.json").json())
        assert set(variants) == {"text", "texts"}
        assert all(v["additionalProperties"] is False for v in variants.values())  # exactly one of text/texts
        text, texts = variants["text"]["properties"]["text"], variants["texts"]["properties"]["texts"]
        assert (text["minLength"], text["maxLength"]) == (1, 50) and text["pattern"]
        assert (texts["minItems"], texts["maxItems"], texts["items"]["maxLength"]) == (1, 3, 50)
        assert variants["text"]["properties"]["model"]["enum"] == ["distilbert", "lstm", "minilm", None]
        for variant in variants.values():  # every other field the body takes is documented too
            assert variant["properties"]["reject_ood"]["type"] == "boolean"

        def post(body: dict):
            return client.post("/predict/sentiment", json=body)

        assert post({"text": "x" * 50}).status_code == 200
        assert post({"texts": ["good"] * 3}).status_code == 200
        assert post({"text": "good", "reject_ood": False}).status_code == 200  # schema-valid: served
        assert_error(post({"text": "x" * 51}), 422, "invalid_input")
        assert_error(post({"texts": ["good"] * 4}), 422, "invalid_input")
        assert_error(post({"texts": []}), 422, "invalid_input")
        assert_error(post({"text": " \t\n"}), 422, "invalid_input")  # blank: the pattern refuses it too
        assert_error(post({"text": "good", "texts": ["good"]}), 422, "invalid_input")


def test_anomaly_schema_states_the_served_models_window_and_value_bounds(anomaly_models: Path) -> None:
    with serve("asgi", Settings(models_dir=anomaly_models)) as client:
        request = client.get("/openapi.json").json()["components"]["schemas"]["AnomalyRequest"]
        values = request["properties"]["values"]
        window = client.get("/models/anomaly").json()["input"]["window"]
        flat, rows = values["anyOf"]  # one channel, or rows of several (nearest_context only)
        assert values["minItems"] == window == 48 and flat["maxItems"] == rows["maxItems"] == 20_000
        assert rows["items"]["maxItems"] == 16 and rows["items"]["items"] == flat["items"]
        number, null = flat["items"]["anyOf"]  # null: a missing value (nearest_context only)
        assert (number["minimum"], number["maximum"], null) == (-1e30, 1e30, {"type": "null"})

        def post(series: list[float]):
            return client.post("/predict/anomaly", json={"values": series, "method": "autoencoder"})

        assert post([1.0] * window).status_code == 200
        assert_error(post([1.0] * (window - 1)), 422, "invalid_input")
        extreme = post([1e30, -1e30] * window)
        assert extreme.status_code == 200 and None not in extreme.json()["scores"]  # scored, never nulls
        assert_error(post([1.0] * (window - 1) + [1.0001e30]), 422, "invalid_input")
        # "type": "number" and "format": "date-time" hold too: no booleans or numeric strings, no epoch numbers.
        assert_error(post([True] * window), 422, "invalid_input")
        assert_error(post(["1.5"] * window), 422, "invalid_input")
        variants = {v["title"]: v["properties"]["values"]["minItems"] for v in request["oneOf"]}
        assert variants == {"Autoencoder": window, "Causal": 101, "Non-causal": 200}
        # Rows of several channels keep a 150-row warm-up (multivariate.CHANNEL_WARMUP): 151 rows, 300 non-causal.
        several = {v["title"]: v["properties"]["values"]["anyOf"][1]["minItems"] for v in request["oneOf"][1:]}
        assert several == {"Causal": 151, "Non-causal": 300}
        assert request["oneOf"][0]["properties"]["values"]["items"] == {"type": "number"}  # the autoencoder: no null
        assert_error(post([1.0] * (window - 1) + [None]), 422, "invalid_input")
        series = {"values": [1.0] * window, "timestamps": list(range(window))}
        assert_error(client.post("/predict/anomaly", json=series), 422, "invalid_input")
    with serve("asgi", Settings(models_dir=COMMITTED_MODELS, models=["nearest_context"])) as served:
        for rows, width, status in [(100, 1, 422), (101, 1, 200), (150, 2, 422), (151, 2, 200)]:
            table = [[float(i % 7 + c) for c in range(width)] for i in range(rows)]
            assert served.post("/predict/anomaly", json={"values": table}).status_code == status, (rows, width)


def test_the_document_is_rebuilt_until_the_models_have_loaded(anomaly_models: Path) -> None:
    app = create_app(Settings(models_dir=anomaly_models))
    before = app.openapi()["components"]["schemas"]["AnomalyRequest"]["properties"]["values"]
    assert before["minItems"] == 1 and "not known" in before["description"]  # a true lower bound meanwhile
    app.state.registry.load_all()
    after = app.openapi()
    assert after["components"]["schemas"]["AnomalyRequest"]["properties"]["values"]["minItems"] == 48
    assert app.openapi() is after  # cached once loaded


def test_every_route_documents_its_errors_from_the_error_table(tmp_path: Path) -> None:
    doc = create_app(Settings(models_dir=tmp_path)).openapi()
    documented: set[str] = set()
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert {"405", "500"} <= set(responses), (method, path)
            assert responses["405"]["headers"]["Allow"]["required"] is True
            if not path.startswith(("/health", "/v2/health")):
                assert {"401", "429"} <= set(responses), (method, path)
            if "429" in responses:
                assert responses["429"]["headers"]["Retry-After"]["required"] is True
            for status, response in responses.items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                not_ready = (path, status) == ("/v2/health/ready", "503")  # {"ready": false}, the protocol's answer
                if path.startswith("/v2") and int(status) >= 400 and not not_ready:  # the protocol's {"error": str}
                    assert schema["properties"] == {"error": {"title": "Error", "type": "string"}}, (method, path)
                    continue
                types = schema.get("properties", {}).get("error", {}).get("properties", {}).get("type", {})
                for type_ in types.get("enum", []):
                    assert ERROR_TABLE[type_].status == int(status), (method, path, type_)
                    documented.add(type_)
                assert status != "422" or types, (method, path)  # never FastAPI's own 422 body
    assert documented == set(ERROR_TABLE)  # every error type is documented where it can happen
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.mark.parametrize("route", ["/predict/digit", "/predict/image"])
def test_image_routes_document_a_required_file_or_a_raw_image(route: str, tmp_path: Path) -> None:
    body = create_app(Settings(models_dir=tmp_path)).openapi()["paths"][route]["post"]["requestBody"]
    assert body["required"] is True
    multipart = body["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] == ["file"] and multipart["properties"]["file"]["format"] == "binary"
    assert body["content"]["image/*"]["schema"]["format"] == "binary"
