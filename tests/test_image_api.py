"""POST /predict/image on a real transfer artifact trained in this session by training.train_transfer.main.

The artifact is small (MobileNetV2 alpha 0.35 at 96 px, random weights: nothing can be downloaded here) but goes
through the same code path as the served cats-vs-dogs model: image folder -> prepare_image -> Keras -> ONNX ->
manifest -> ImageRuntime. Runs in-process (ASGI + lifespan) and behind a real uvicorn.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.config import Settings
from app.manifest import read_manifest, save_entry
from tests.support.service import assert_error, serve
from tests.support.transfer_images import CLASSES, encode

IMAGE_SIZE = 96


@pytest.fixture(scope="module", params=["asgi", "uvicorn"])
def image_client(request: pytest.FixtureRequest, image_models_dir: Path):
    with serve(request.param, Settings(models_dir=image_models_dir)) as c:
        yield c


def clear_image(kind: str, size: tuple[int, int] = (300, 200), mode: str = "RGB") -> Image.Image:
    """A big, centred red circle or blue square on white: what a person would call unambiguous."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    w, h = size
    r = int(min(w, h) * 0.42)
    box = (w // 2 - r, h // 2 - r, w // 2 + r, h // 2 + r)
    if kind == "red_circles":
        draw.ellipse(box, fill=(230, 20, 20))
    else:
        draw.rectangle(box, fill=(20, 20, 230))
    return image.convert(mode)


RED_PNG = encode(clear_image("red_circles"))


def test_artifact_contents(image_models_dir: Path) -> None:
    [entry] = [m.model_dump() for m in read_manifest(image_models_dir).models if m.name == "image"]
    assert entry["task"] == "image-classification" and entry["runtime"] == "image-onnx"
    assert "training.train_transfer" in entry["command"] and "--weights none" in entry["command"]
    folder = image_models_dir / entry["path"]
    for role in ("onnx", "keras", "labels", "metrics", "training_curves", "confusion_matrix"):
        assert (folder / entry["files"][role]).is_file(), role
    assert json.loads((folder / "labels.json").read_text())["labels"] == list(CLASSES)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0 <= metrics["validation_accuracy"] <= 1 and metrics["validation_examples"] == 12
    assert np.array(metrics["confusion_matrix"]).sum() == 12 and set(metrics["per_class_accuracy"]) == set(CLASSES)
    assert metrics["onnx_validation_accuracy"] == pytest.approx(metrics["validation_accuracy"])
    assert metrics["onnx_max_abs_diff"] < 1e-4
    assert metrics["fine_tuning"] == {"layers": 10, "epochs": 1} and metrics["epochs"] == metrics["frozen_epochs"] + 1
    assert {"tensorflow", "keras", "onnxruntime"} <= set(metrics["libraries"])


def test_model_is_listed_and_ready(image_client) -> None:
    assert image_client.get("/health/ready").json()["models"]["image"] == "ready"
    info = image_client.get("/models/image").json()
    assert info["state"] == "ready" and info["task"] == "image-classification"
    assert info["input"]["labels"] == list(CLASSES)


def test_predict_image_schema(image_client) -> None:
    response = image_client.post("/predict/image", files={"file": ("red.png", RED_PNG, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"label", "confidence", "top_k", "model", "in_distribution", "ood_score", "ood_reason"}
    assert body["in_distribution"] is None  # this artifact has no out-of-distribution thresholds: not checked
    assert body["model"] == {"name": "image", "version": "1"}
    assert len(body["top_k"]) == 2 and {t["label"] for t in body["top_k"]} == set(CLASSES)
    scores = [t["score"] for t in body["top_k"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-4)
    assert body["label"] == body["top_k"][0]["label"] and body["confidence"] == scores[0]


@pytest.mark.parametrize("kind", CLASSES)
def test_predicts_the_right_class_on_a_clear_image(image_client, kind: str) -> None:
    png = encode(clear_image(kind))
    assert image_client.post("/predict/image", files={"file": ("x.png", png, "image/png")}).json()["label"] == kind


def test_any_mode_and_size_and_raw_body(image_client) -> None:
    rgb = image_client.post("/predict/image", content=RED_PNG, headers={"content-type": "image/png"}).json()
    # Transparent RGBA (composited on white), palette, grayscale, a large JPEG: all accepted.
    rgba = clear_image("red_circles").convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    ImageDraw.Draw(alpha).rectangle((0, 0, 40, 40), fill=0)
    rgba.putalpha(alpha)
    for data in (
        encode(rgba),
        encode(clear_image("red_circles", mode="P")),
        encode(clear_image("red_circles", mode="L")),
        encode(clear_image("red_circles", (1200, 900)), "JPEG"),
    ):
        response = image_client.post("/predict/image", files={"file": ("x", data, "application/octet-stream")})
        assert response.status_code == 200, response.text
    assert rgb["label"] == "red_circles"


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n garbage", b"", RED_PNG[: len(RED_PNG) // 2]])
def test_corrupt_image_is_400(image_client, data: bytes) -> None:
    response = image_client.post("/predict/image", files={"file": ("x.png", data, "image/png")})
    assert_error(response, 400, "invalid_image")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_wrong_content_type_is_415(image_client, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = image_client.post("/predict/image", content=RED_PNG, headers=headers)
    assert_error(response, 415, "unsupported_media_type")


def test_missing_file_is_422(image_client) -> None:
    response = image_client.post("/predict/image", files={"image": ("x.png", RED_PNG, "image/png")})
    assert_error(response, 422, "invalid_input")


def test_bomb_and_oversized_body_are_413(image_client) -> None:
    bomb = encode(Image.new("L", (5000, 5000)), "PNG")
    response = image_client.post("/predict/image", files={"file": ("bomb.png", bomb, "image/png")})
    assert_error(response, 413, "image_too_large")
    big = b"\x00" * (4 * 1024 * 1024 + 1)
    response = image_client.post("/predict/image", content=big, headers={"content-type": "image/png"})
    assert_error(response, 413, "payload_too_large")


def test_openapi_documents_the_route(image_client) -> None:
    paths = image_client.get("/openapi.json").json()["paths"]
    assert "image/*" in paths["/predict/image"]["post"]["requestBody"]["content"]


def test_not_installed_without_an_artifact(tmp_path: Path) -> None:
    with serve("asgi", Settings(models_dir=tmp_path)) as client:
        error = assert_error(
            client.post("/predict/image", content=RED_PNG, headers={"content-type": "image/png"}),
            503,
            "model_not_installed",
        )
        assert "training.train_transfer" in error["message"]


def test_model_parameter_picks_an_image_classifier(image_client) -> None:
    def post(query: str):
        return image_client.post(f"/predict/image{query}", content=RED_PNG, headers={"content-type": "image/png"})

    named = post("?model=image")
    assert named.status_code == 200 and named.json()["model"]["name"] == "image"
    assert post("").json()["model"]["name"] == "image"  # the task's default
    error = assert_error(post("?model=digit"), 422, "invalid_input")  # a model of another task
    assert error["detail"]["model"] == "digit" and "image" in error["detail"]["models"]
    assert_error(post("?model=nope"), 404, "model_not_found")
    assert_error(post("?model="), 404, "model_not_found")


def test_openapi_documents_the_model_parameter(image_client) -> None:
    operation = image_client.get("/openapi.json").json()["paths"]["/predict/image"]["post"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["X-Model-Version"]["in"] == "header"
    assert set(parameters) == {"model", "X-Model-Version", "reject_ood"}
    assert parameters["reject_ood"]["in"] == "query" and "422" in operation["responses"]
    parameter = parameters["model"]
    assert parameter["in"] == "query" and not parameter["required"]
    assert "image" in parameter["schema"]["enum"] and "digit" not in parameter["schema"]["enum"]
    assert "404" in operation["responses"]


def test_a_manifest_with_the_old_task_name_still_serves(tmp_path: Path, image_models_dir: Path) -> None:
    """Manifests written before /predict/image served several families say "image-classification/transfer"."""
    models = tmp_path / "models"
    shutil.copytree(image_models_dir, models)
    for entry in read_manifest(models).models:
        save_entry(models, entry.model_copy(update={"task": "image-classification/transfer"}))
    with serve("asgi", Settings(models_dir=models)) as client:
        for query in ("", "?model=image"):
            response = client.post(f"/predict/image{query}", content=RED_PNG, headers={"content-type": "image/png"})
            assert response.status_code == 200 and response.json()["model"]["name"] == "image"
        assert client.get("/models/image").json()["task"] == "image-classification"
