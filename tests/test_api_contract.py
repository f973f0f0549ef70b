"""Every route and every error status, in-process (ASGI + lifespan) and against a real uvicorn server."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.support.digit_images import encode, render
from tests.support.service import assert_error

PNG = render(7, "mnist_28")


def test_live_and_ready(client) -> None:
    assert client.get("/health/live").json() == {"status": "alive", "models": {}, "message": ""}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["models"]["digit"] == "ready"


def test_models_lists_digit_with_training_metrics(client) -> None:
    models = {m["name"]: m for m in client.get("/models").json()}
    digit = models["digit"]
    assert digit["state"] == "ready" and digit["version"] == "1" and digit["task"] == "image-classification/digit"
    assert digit["metrics"]["parameters"] == 93322 and 0 <= digit["metrics"]["test_accuracy"] <= 1
    assert "train_digit" in digit["training_command"]
    assert digit["default"] is True  # it answers /predict/digit without ?model=
    one = client.get("/models/digit").json()
    assert one.pop("load_seconds") > 0 and digit.pop("load_seconds") > 0  # per process: replicas differ (Ray)
    assert one == digit


def test_unknown_model_is_404(client) -> None:
    error = assert_error(client.get("/models/resnet"), 404, "model_not_found")
    assert "digit" in error["detail"]["known"]


def test_predict_digit_multipart(client) -> None:
    response = client.post("/predict/digit", files={"file": ("seven.png", PNG, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"digit", "confidence", "probabilities", "model", "in_distribution", "ood_score", "ood_reason"}
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert body["confidence"] == max(body["probabilities"])
    assert body["digit"] == int(np.argmax(body["probabilities"]))
    assert body["model"] == {"name": "digit", "version": "1"}
    assert response.headers["x-request-id"]


def test_predict_digit_raw_body_equals_multipart(client) -> None:
    raw = client.post("/predict/digit", content=PNG, headers={"content-type": "image/png"})
    multipart = client.post("/predict/digit", files={"file": ("seven.png", PNG, "image/png")})
    assert raw.status_code == 200 and raw.json() == multipart.json()


def test_predict_digit_reads_a_real_digit_correctly(client) -> None:
    # The session's model is trained for seconds on 1,500 real 8x8 digits upscaled: it still reads a clear 1.
    response = client.post("/predict/digit", files={"file": ("one.png", render(1, "black_on_white"), "image/png")})
    assert response.json()["digit"] == 1


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n garbage", b"GIF89a", PNG[: len(PNG) // 2]])
def test_corrupt_image_is_400(client, data: bytes) -> None:
    assert_error(client.post("/predict/digit", files={"file": ("x.png", data, "image/png")}), 400, "invalid_image")


def test_empty_upload_is_400(client) -> None:
    assert_error(
        client.post("/predict/digit", content=b"", headers={"content-type": "image/png"}), 400, "invalid_image"
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_wrong_content_type_is_415(client, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    assert_error(client.post("/predict/digit", content=PNG, headers=headers), 415, "unsupported_media_type")


def test_non_image_part_is_415(client) -> None:
    response = client.post("/predict/digit", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert_error(response, 415, "unsupported_media_type")


def test_missing_file_field_is_422(client) -> None:
    response = client.post("/predict/digit", files={"image": ("seven.png", PNG, "image/png")})
    assert_error(response, 422, "invalid_input")


def test_blank_image_is_422(client) -> None:
    blank = encode(Image.new("L", (64, 64), 255), "PNG")
    error = assert_error(
        client.post("/predict/digit", files={"file": ("b.png", blank, "image/png")}), 422, "invalid_input"
    )
    assert "No digit" in error["message"]


def test_upload_over_the_size_limit_is_413(client) -> None:
    big = b"\x00" * (4 * 1024 * 1024 + 1)
    response = client.post("/predict/digit", content=big, headers={"content-type": "image/png"})
    assert_error(response, 413, "payload_too_large")


def test_chunked_upload_over_the_size_limit_is_413(client) -> None:
    def chunks():
        for _ in range(80):
            yield b"\x00" * 65536  # 5 MiB with no Content-Length: refused while streaming

    response = client.post("/predict/digit", content=chunks(), headers={"content-type": "image/png"})
    assert_error(response, 413, "payload_too_large")


def test_decompression_bomb_is_413(client) -> None:
    bomb = encode(Image.new("L", (5000, 5000)), "PNG")
    response = client.post("/predict/digit", files={"file": ("bomb.png", bomb, "image/png")})
    error = assert_error(response, 413, "image_too_large")
    assert error["detail"] == {"width": 5000, "height": 5000, "max_pixels": 4096 * 4096}


def test_unknown_route_and_method(client) -> None:
    assert_error(client.get("/predict/nothing"), 404, "not_found")
    assert_error(client.get("/predict/digit"), 405, "method_not_allowed")


def test_metrics_count_requests(client) -> None:
    client.post("/predict/digit", content=PNG, headers={"content-type": "image/png"})
    text = client.get("/metrics").text
    assert 'deepserve_requests_total{method="POST",route="/predict/digit",status="200"}' in text
    assert 'deepserve_model_ready{model="digit"} 1.0' in text
    assert "deepserve_inference_seconds_bucket" in text


def test_metrics_labels_stay_bounded_whatever_method_a_client_sends(client) -> None:
    """Every method a client sends was one more time series in /metrics, kept for ever (uvicorn's parser takes the
    WebDAV and other registered methods; an ASGI server may take any token)."""
    methods = ["PROPFIND", "MKCOL", "LOCK", "UNLOCK", "PURGE", "REPORT", "SEARCH"]
    for method in methods:
        assert client.request(method, "/health/live").status_code == 405
    text = client.get("/metrics").text
    assert not any(f'method="{method}"' in text for method in methods)
    assert 'deepserve_requests_total{method="other",route="/health/live",status="405"} 7.0' in text


def test_openapi_documents_the_routes(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict/digit", "/health/ready", "/health/live", "/models", "/models/{name}", "/metrics"} <= set(paths)
    assert "image/*" in paths["/predict/digit"]["post"]["requestBody"]["content"]


def test_models_metadata_shows_no_absolute_paths(client, trained_models_dir) -> None:
    text = client.get("/models").text
    assert "train_digit" in text and "/tmp/" not in text and str(trained_models_dir) not in text


def test_a_model_named_in_the_route_gets_a_404_pointing_to_its_route(client) -> None:
    error = assert_error(client.post("/predict/fashion", content=PNG), 404, "not_found")
    assert error["detail"]["route"] == "POST /predict/image?model=fashion"
    assert "/predict/image?model=fashion" in error["message"]
    error = assert_error(client.post("/predict/lstm", json={"text": "fine"}), 404, "not_found")
    assert '"model": "lstm"' in error["message"]
    error = assert_error(client.post("/predict/resnet"), 404, "not_found")  # no such model: the routes there are
    assert error["detail"]["routes"] == ["/predict/anomaly", "/predict/digit", "/predict/image", "/predict/sentiment"]
