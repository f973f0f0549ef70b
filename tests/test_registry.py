"""The registry owns readiness: failures stay per model, missing families are 'not installed', not fatal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import ERROR_TABLE, Overloaded
from app.limiter import ConcurrencyLimiter
from app.manifest import ManifestEntry, add_to_manifest, read_manifest
from tests.conftest import serve
from tests.digit_images import render

PNG = render(2, "mnist_28")


def copy_models(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def predict(client):
    return client.post("/predict/digit", content=PNG, headers={"content-type": "image/png"})


def test_no_manifest_means_not_installed_and_ready(tmp_path: Path) -> None:
    with serve("asgi", Settings(models_dir=tmp_path)) as client:
        assert client.get("/health/ready").status_code == 200
        response = predict(client)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["type"] == "model_not_installed" and "python -m training.train_digit" in error["message"]
        assert client.get("/models/digit").json()["state"] == "not_installed"


def test_configured_but_missing_model_fails_readiness(tmp_path: Path) -> None:
    with serve("asgi", Settings(models_dir=tmp_path, models=["digit"])) as client:
        assert client.get("/health/ready").status_code == 503
        assert predict(client).json()["error"]["type"] == "model_not_ready"


@pytest.mark.parametrize("mode", ["asgi", "uvicorn"])
def test_corrupt_artifact_fails_only_its_model(tmp_path: Path, trained_models_dir: Path, mode: str) -> None:
    models = copy_models(trained_models_dir, tmp_path / "models")
    good = read_manifest(models).latest()["digit"]
    broken = models / "digit-broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"this is not an onnx file")
    add_to_manifest(models, good.model_copy(update={"name": "digit-broken", "path": "digit-broken/1"}))
    with serve(mode, Settings(models_dir=models)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        states = ready.json()["models"]
        assert states["digit"] == "ready" and states["digit-broken"] == "failed"
        assert {states[name] for name in ("image", "lstm", "distilbert", "anomaly")} == {"not_installed"}
        assert predict(client).status_code == 200  # the healthy model keeps serving
        info = client.get("/models/digit-broken").json()
        assert info["state"] == "failed" and "onnx" in info["message"].lower()


def test_failed_model_endpoint_answers_503_with_how_to_train(tmp_path: Path, trained_models_dir: Path) -> None:
    models = copy_models(trained_models_dir, tmp_path / "models")
    (models / "digit" / "1" / "model.onnx").unlink()
    with serve("asgi", Settings(models_dir=models)) as client:
        assert client.get("/health/ready").status_code == 503
        error = predict(client).json()["error"]
        assert error["type"] == "model_not_ready" and "training.train_digit" in error["message"]
        assert error["detail"]["reason"].startswith("NoSuchFile") or "model.onnx" in error["detail"]["reason"]


def test_unknown_runtime_fails_the_model(tmp_path: Path, trained_models_dir: Path) -> None:
    models = copy_models(trained_models_dir, tmp_path / "models")
    entry = read_manifest(models).latest()["digit"]
    add_to_manifest(models, entry.model_copy(update={"runtime": "tensorflow-savedmodel"}))
    with serve("asgi", Settings(models_dir=models)) as client:
        assert "unknown runtime" in client.get("/models/digit").json()["message"]


def test_corrupt_manifest_fails_configured_models_not_the_process(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with serve("asgi", Settings(models_dir=tmp_path, models=["digit"])) as client:
        assert client.get("/health/live").status_code == 200
        assert "manifest.json" in client.get("/models/digit").json()["message"]


def test_latest_version_is_served(tmp_path: Path) -> None:
    base = {"name": "m", "task": "t", "runtime": "r", "path": "m/x"}
    for version in ["2", "10", "9"]:
        add_to_manifest(tmp_path, ManifestEntry(version=version, **base))
    add_to_manifest(tmp_path, ManifestEntry(version="2", **base))  # replacing keeps one entry per version
    manifest = read_manifest(tmp_path)
    assert len(manifest.models) == 3 and manifest.latest()["m"].version == "10"


def test_limiter_answers_429_when_full() -> None:
    limiter = ConcurrencyLimiter(1)
    with limiter.slot():
        with pytest.raises(Overloaded):
            with limiter.slot():
                pass
    with limiter.slot():  # released after use
        assert limiter.in_flight == 1


def test_overloaded_request_gets_429(trained_models_dir: Path) -> None:
    with serve("asgi", Settings(models_dir=trained_models_dir, max_concurrent_requests=1)) as client:
        limiter = client.app.state.limiter
        limiter.in_flight = 1  # one prediction already in flight
        response = predict(client)
        limiter.in_flight = 0
        assert response.status_code == 429 and response.json()["error"]["type"] == "overloaded"
        assert predict(client).status_code == 200


def test_error_table_statuses() -> None:
    assert ERROR_TABLE == {
        "invalid_image": 400,
        "model_not_found": 404,
        "payload_too_large": 413,
        "image_too_large": 413,
        "unsupported_media_type": 415,
        "invalid_input": 422,
        "overloaded": 429,
        "model_not_ready": 503,
        "model_not_installed": 503,
        "internal_error": 500,
        "not_found": 404,
        "method_not_allowed": 405,
    }
