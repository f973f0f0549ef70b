"""The registry owns readiness: failures stay per model, missing families are 'not installed', not fatal."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.config import Settings
from app.core.limiter import ConcurrencyLimiter
from app.errors import ERROR_TABLE, Overloaded, markdown_table
from app.manifest import ManifestEntry, read_manifest, save_entry, write_promoted
from tests.support.digit_images import render
from tests.support.paths import ROOT
from tests.support.service import serve

PNG = render(2, "mnist_28")


def copy_models(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def predict(client):
    return client.post("/predict/digit", content=PNG, headers={"content-type": "image/png"})


def test_no_manifest_means_not_installed_and_not_ready(tmp_path: Path) -> None:
    with serve("asgi", Settings(models_dir=tmp_path)) as client:
        assert client.get("/health/ready").status_code == 503  # a service with nothing to serve is not ready
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
    save_entry(models, good.model_copy(update={"name": "digit-broken", "path": "digit-broken/1"}))
    with serve(mode, Settings(models_dir=models)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        states = ready.json()["models"]
        assert states["digit"] == "ready" and states["digit-broken"] == "failed"
        assert {states[name] for name in ("image", "lstm", "distilbert", "anomaly")} == {"not_installed"}
        assert predict(client).status_code == 200  # the healthy model keeps serving
        info = client.get("/models/digit-broken").json()
        assert info["state"] == "failed" and "corrupt" in info["message"] and str(tmp_path) not in str(info)


def test_failed_model_endpoint_answers_503_with_how_to_train(
    tmp_path: Path, trained_models_dir: Path, service_log
) -> None:
    models = copy_models(trained_models_dir, tmp_path / "models")
    (models / "digit" / "1" / "model.onnx").unlink()
    with serve("asgi", Settings(models_dir=models)) as client:
        assert client.get("/health/ready").status_code == 503
        response = predict(client)
        error = response.json()["error"]
        assert error["type"] == "model_not_ready" and "training.train_digit" in error["message"]
        assert error["detail"] == {"model": "digit", "install": error["detail"]["install"]}
        assert str(tmp_path) not in response.text and "model.onnx" not in response.text  # the cause is logged
        assert "model.onnx" in service_log.text() and "failed to load" in service_log.text()


def test_unknown_runtime_fails_the_model(tmp_path: Path, trained_models_dir: Path, service_log) -> None:
    models = copy_models(trained_models_dir, tmp_path / "models")
    entry = read_manifest(models).latest()["digit"]
    save_entry(models, entry.model_copy(update={"runtime": "tensorflow-savedmodel"}))
    with serve("asgi", Settings(models_dir=models)) as client:
        assert client.get("/models/digit").json()["state"] == "failed"
        assert "unknown runtime 'tensorflow-savedmodel'" in service_log.text()


def test_corrupt_model_json_fails_configured_models_not_the_process(tmp_path: Path) -> None:
    (tmp_path / "digit" / "1").mkdir(parents=True)
    (tmp_path / "digit" / "1" / "model.json").write_text("{not json")
    with serve("asgi", Settings(models_dir=tmp_path, models=["digit"])) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 503
        message = client.get("/models/digit").json()["message"]
        assert "model.json" in message and str(tmp_path) not in message and "not json" not in message


CATALOGUE_TEXT = {
    "not_json": ("digit/1/model.json", "{not json"),
    "wrong_shape": ("digit/1/model.json", '{"name": 3}'),
    "no_models": ("manifest.json", '{"models": []}'),  # the older one-file layout, empty
    "legacy_not_json": ("manifest.json", "{not json"),
    "bad_pointer": ("digit/promoted.json", '["1"]'),
    "unreadable": ("digit/1/model.json", "{}"),
}


@pytest.mark.parametrize("case", ["missing_folder", "empty_folder", "is_a_folder", *CATALOGUE_TEXT])
def test_broken_catalogue_is_not_ready_and_logged_once(tmp_path: Path, case: str, service_log) -> None:
    folder = tmp_path / "models"
    if case == "missing_folder":
        folder = tmp_path / "no-such-folder"
    elif case == "empty_folder":
        folder.mkdir()
    elif case == "is_a_folder":
        (folder / "digit" / "1" / "model.json").mkdir(parents=True)
    else:
        name, text = CATALOGUE_TEXT[case]
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
        if case == "unreadable":
            (folder / name).chmod(0)
            if os.access(folder / name, os.R_OK):  # root reads anything: make it unparsable instead
                (folder / name).chmod(0o644)
                (folder / name).write_bytes(b"\xff\xfe\x00")
    with serve("asgi", Settings(models_dir=folder)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert "DEEPSERVE_MODELS_DIR" in ready.json()["message"] and str(tmp_path) not in ready.text
        assert client.get("/health/live").status_code == 200
    errors = [r for r in service_log.records if r.levelname == "ERROR" and "catalogue" in r.getMessage()]
    assert len(errors) == 1


def test_promoted_version_is_served_else_the_latest(tmp_path: Path) -> None:
    base = {"name": "m", "task": "t", "runtime": "r"}
    for version in ["2", "10", "9"]:
        save_entry(tmp_path, ManifestEntry(version=version, path=f"m/{version}", **base))
    save_entry(tmp_path, ManifestEntry(version="2", path="m/2", **base))  # replacing keeps one entry per version
    manifest = read_manifest(tmp_path)
    assert len(manifest.models) == 3 and manifest.served()["m"].version == "10"
    assert [m.version for m in manifest.versions("m")] == ["2", "9", "10"]
    write_promoted(tmp_path, "m", "9")
    manifest = read_manifest(tmp_path)
    assert manifest.served()["m"].version == "9" and manifest.latest()["m"].version == "10"


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


def test_the_documented_error_table_is_generated_from_error_table() -> None:
    errors = (ROOT / "docs" / "errors.md").read_text()
    assert markdown_table() in errors, "docs/errors.md's error table drifted: run python -m tools.docs errors"
    statuses = {kind.type: kind.status for kind in ERROR_TABLE.values()}
    assert statuses["malformed_body"] == 400 and statuses["invalid_input"] == 422 and statuses["overloaded"] == 429


def test_reload_swaps_a_model_without_failing_a_request(tmp_path: Path, trained_models_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from app.errors import ArtifactInvalid, ModelNotFound

    models = copy_models(trained_models_dir, tmp_path / "models")
    first = read_manifest(models).latest()["digit"]
    shutil.copytree(models / first.path, models / "digit" / "v2")
    save_entry(models, first.model_copy(update={"version": first.version + "1", "path": "digit/v2"}))
    second = first.version + "1"
    with serve("asgi", Settings(models_dir=models, models=["digit"])) as client:
        registry = client.app.state.registry
        assert registry.runtime("digit").entry.version == first.version  # the promoted one, not the newest
        with ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(predict, client) for _ in range(60)]
            registry.reload("digit", second)  # while requests are in flight
            responses = [a.result() for a in answers]
        assert [r.status_code for r in responses] == [200] * 60
        assert predict(client).json()["model"]["version"] == second
        with pytest.raises(ModelNotFound):
            registry.runtime("digit", version=first.version)  # another version is served now
        registry.reload("digit")  # the promoted version again
        assert predict(client).json()["model"]["version"] == first.version

        (models / "digit" / "v2" / first.files["onnx"]).write_bytes(b"corrupt")
        with pytest.raises(ArtifactInvalid):
            registry.reload("digit", second)
        assert predict(client).status_code == 200  # a failed reload leaves the serving model alone
        registry.unload("digit")
        response = predict(client)
        assert response.status_code == 503 and response.json()["error"]["type"] == "model_not_installed"
