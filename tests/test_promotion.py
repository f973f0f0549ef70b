"""Promotion as a transaction, the start-up fallback, the gate on reload, reloads of unreadable manifests and
rate-limited pinned-version loads: each on real artifacts (the committed digit model, copies of it with other
metrics or a garbage ONNX file) and, where an operator would meet it, a real server."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import cli
from app.config import Settings
from app.core import promotion
from app.manifest import write_promoted
from tests.support.digit_images import render
from tests.support.service import assert_error, cli_client, serve, uvicorn_client
from tests.support.versions import add_version, digit_folder

PNG = {"content": render(7, "mnist_28"), "headers": {"content-type": "image/png"}}


def promote(models: Path, *args: str):
    return CliRunner().invoke(cli.main, ["promote", "digit", *args, "--models", str(models)])


def pointer(models: Path) -> bytes:
    return (models / "digit" / "promoted.json").read_bytes()


def served(client) -> str:
    answer = client.post("/predict/digit", **PNG)
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]["version"]


def errors(log: str) -> list[dict]:
    """The service's ERROR lines (its JSON log lines at level ERROR)."""
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("level") == "ERROR"]


def test_a_version_that_does_not_load_is_not_promoted_and_a_good_one_is(tmp_path: Path) -> None:
    models = digit_folder(tmp_path / "models")
    add_version(models, "2", corrupt=True)
    add_version(models, "3")
    before = pointer(models)
    failed = promote(models, "2", "--force")
    assert failed.exit_code == 1 and pointer(models) == before
    line = failed.output.strip()
    assert "\n" not in line and "digit v2 was not promoted: it failed to load here" in line, line
    assert "promoted.json still names v1" in line
    done = promote(models, "3")
    assert done.exit_code == 0 and "promoted digit v3 (was v1" in done.output
    assert json.loads(pointer(models)) | {"promoted": ""} == {"version": "3", "previous": "1", "promoted": ""}


@pytest.mark.slow
def test_promote_with_url_loads_in_the_service_first_and_a_refused_load_changes_nothing(tmp_path: Path) -> None:
    models = digit_folder(tmp_path / "models")
    add_version(models, "2", corrupt=True)
    add_version(models, "3", accuracy=0.5)
    before = pointer(models)
    with uvicorn_client(Settings(models_dir=models, models=["digit"])) as client:
        url = str(client.base_url)
        failed = promote(models, "2", "--force", "--url", url)
        assert failed.exit_code == 1 and pointer(models) == before, failed.output
        assert f"the service at {url} did not load it (422 artifact_invalid" in failed.output
        assert served(client) == "1"
        refused = promote(models, "3", "--url", url)  # worse: the gate refuses before asking the service
        assert refused.exit_code == 1 and "--force" in refused.output and pointer(models) == before
        assert served(client) == "1"
        done = promote(models, "3", "--force", "--url", url)
        assert done.exit_code == 0 and f"loaded in the service at {url}: serving v3" in done.output
        assert served(client) == "3" and json.loads(pointer(models))["version"] == "3"
    with uvicorn_client(Settings(models_dir=models, models=["digit"])) as client:  # a restart serves the promoted
        assert served(client) == "3"


@pytest.mark.slow
def test_when_the_pointer_cannot_be_written_the_service_goes_back_to_the_promoted_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = digit_folder(tmp_path / "models")
    add_version(models, "2")
    before = pointer(models)

    def full_disk(*args, **kwargs):  # root writes through any permission, so the full disk is injected
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(promotion, "write_promoted", full_disk)
    with uvicorn_client(Settings(models_dir=models, models=["digit"])) as client:
        url = str(client.base_url)
        failed = promote(models, "2", "--url", url)
        assert failed.exit_code == 1 and pointer(models) == before, failed.output
        assert "digit v2 loaded but was not promoted: promoted.json could not be written" in failed.output
        assert f"the service at {url} serves v1 again" in failed.output
        assert served(client) == "1"


def fallback_folder(tmp_path: Path, broken: str) -> Path:
    """digit v1, and v2 promoted after it whose ONNX file is garbage, whose model.json is unreadable, or whose
    folder is gone (what a failed promotion by the code before left behind: promoted.json naming v2, previous v1)."""
    models = digit_folder(tmp_path / "models")
    folder = add_version(models, "2", corrupt=broken == "onnx")
    if broken == "model_json":
        (folder / "model.json").write_text("{not json")
    if broken == "deleted":
        shutil.rmtree(folder)
    write_promoted(models, "digit", "2", "1")
    return models


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["onnx", "model_json", "deleted"])
def test_a_promoted_version_that_fails_at_start_up_falls_back_to_the_previous_one(tmp_path: Path, broken: str) -> None:
    models = fallback_folder(tmp_path, broken)
    with uvicorn_client(Settings(models_dir=models)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text  # it answers: ready, and says how
        body = ready.json()
        assert body["status"] == "degraded" and body["fallbacks"] == {"digit": {"wanted": "2", "serving": "1"}}
        assert "digit serves version 1" in body["message"]
        info = client.get("/models/digit").json()
        assert info["state"] == "ready" and info["version"] == "1"
        assert info["fallback"] == {"wanted": "2", "serving": "1"} and "version 2 failed to load" in info["message"]
        assert served(client) == "1"
        assert str(tmp_path) not in info["message"]
        logged = errors(client.server_log())
    assert len(logged) == 1, logged
    assert "digit v2 failed to load" in logged[0]["message"] and "serving v1 instead" in logged[0]["message"]


@pytest.mark.slow
def test_every_worker_falls_back_and_a_failed_promotion_leaves_them_all_on_it(tmp_path: Path) -> None:
    models = fallback_folder(tmp_path, "onnx")
    env = {"DEEPSERVE_DATA_DIR": str(tmp_path / "data"), "DEEPSERVE_MODELS": "digit"}
    with cli_client(models, 2, env) as client:  # it waits for 10 readiness answers of 200 in a row
        before = pointer(models)
        assert promote(models, "2", "--force", "--url", str(client.base_url)).exit_code == 1
        assert pointer(models) == before
        answers = [client.get("/health/ready").json() for _ in range(20)]  # new connections: both workers
        assert {(a["status"], a["fallbacks"]["digit"]["serving"]) for a in answers} == {("degraded", "1")}
        assert {served(client) for _ in range(20)} == {"1"}
        logged = errors(client.server_log())
    assert sum("serving v1 instead" in line["message"] for line in logged) == 2  # one line from each worker


@pytest.mark.slow
def test_with_no_version_that_loads_the_model_fails_as_before(tmp_path: Path) -> None:
    models = fallback_folder(tmp_path, "onnx")
    (models / "digit" / "1" / "model.onnx").write_bytes(b"garbage too")
    with uvicorn_client(Settings(models_dir=models)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert ready.json()["fallbacks"] == {} and ready.json()["models"]["digit"] == "failed"
        assert client.get("/models/digit").json()["fallback"] is None
        logged = errors(client.server_log())
    assert len(logged) == 1 and "its fallback v1 failed too" in logged[0]["message"], logged


def test_a_reload_of_the_promoted_version_ends_the_fallback(tmp_path: Path) -> None:
    models = fallback_folder(tmp_path, "onnx")
    with serve("asgi", Settings(models_dir=models)) as client:
        assert client.get("/health/ready").json()["status"] == "degraded"
        assert_error(client.post("/admin/models/digit/reload"), 422, "artifact_invalid")  # v2 still broken
        assert client.get("/models/digit").json()["fallback"] == {"wanted": "2", "serving": "1"}
        add_version(models, "3")
        write_promoted(models, "digit", "3", "2")
        assert client.post("/admin/models/digit/reload").json()["version"] == "3"
        ready = client.get("/health/ready").json()
        assert ready["status"] == "ready" and ready["fallbacks"] == {}
        assert client.get("/models/digit").json()["fallback"] is None


@pytest.mark.slow
def test_reloading_a_version_the_gate_refuses_needs_force(tmp_path: Path) -> None:
    models = digit_folder(tmp_path / "models")
    add_version(models, "2", accuracy=0.5)
    add_version(models, "3", accuracy=None)
    with uvicorn_client(Settings(models_dir=models, models=["digit"])) as client:
        error = assert_error(client.post("/admin/models/digit/reload?version=2"), 409, "promotion_refused")
        assert "force=true" in error["message"] and error["detail"]["value"] == 0.5
        assert served(client) == "1"
        assert client.post("/admin/models/digit/reload?version=2&force=true").json()["version"] == "2"
        assert served(client) == "2"
        assert client.post("/admin/models/digit/reload").json()["version"] == "1"  # the promoted one: no gate
        assert client.post("/admin/models/digit/reload?version=3").json()["version"] == "3"  # as good: allowed
        assert_error(client.post("/admin/models/digit/reload?version=9"), 404, "model_not_found")


@pytest.mark.slow
def test_a_reload_never_serves_another_version_than_the_one_asked_for(tmp_path: Path) -> None:
    models = digit_folder(tmp_path / "models")
    add_version(models, "2")
    write_promoted(models, "digit", "2", "1")
    with uvicorn_client(Settings(models_dir=models, models=["digit"])) as client:
        assert served(client) == "2"
        (models / "digit" / "2" / "model.json").write_text("{not json")
        error = assert_error(client.post("/admin/models/digit/reload"), 422, "artifact_invalid")
        assert "promoted version 2 has no readable model.json" in error["message"]
        assert "version 2 keeps serving" in error["message"] and str(tmp_path) not in error["message"]
        assert_error(client.post("/admin/models/digit/reload?version=2"), 422, "artifact_invalid")
        assert served(client) == "2"
        (models / "digit" / "2" / "model.json").unlink()  # the promoted version's folder gone
        assert_error(client.post("/admin/models/digit/reload"), 422, "artifact_invalid")
        (models / "digit" / "promoted.json").write_text("[2")
        error = assert_error(client.post("/admin/models/digit/reload"), 422, "artifact_invalid")
        assert "promoted.json is unreadable" in error["message"]
        assert served(client) == "2"


def test_an_unreadable_candidate_does_not_stop_the_promoted_version(tmp_path: Path, service_log) -> None:
    models = digit_folder(tmp_path / "models")
    (add_version(models, "2") / "model.json").write_text("{not json")
    with serve("asgi", Settings(models_dir=models)) as client:
        ready = client.get("/health/ready").json()
        assert ready["status"] == "ready" and served(client) == "1"
    assert "skipped unreadable files: digit/2/model.json" in service_log.text()


def pin(client, version: str):
    return client.post("/predict/digit", content=PNG["content"], headers=PNG["headers"] | {"x-model-version": version})


@pytest.mark.slow
def test_cycling_pinned_versions_loads_at_most_one_per_interval(tmp_path: Path) -> None:
    models = digit_folder(tmp_path / "models")
    for version in "234":
        add_version(models, version)
    settings = Settings(models_dir=models, max_pinned_versions=2, pinned_load_interval_seconds=600)
    with uvicorn_client(settings) as client:
        answers = [pin(client, "234"[i % 3]) for i in range(12)]
        assert [a.status_code for a in answers] == [200, 429, 429] * 4
        for refused in answers[1:3]:
            error = assert_error(refused, 429, "overloaded")
            assert 1 <= int(refused.headers["retry-after"]) <= 600 and error["detail"]["loaded"] == ["2"]
        assert {a.json()["model"]["version"] for a in answers[::3]} == {"2"}  # the loaded one answers
        assert served(client) == "1" and pin(client, "1").status_code == 200  # the promoted one is no load
        assert client.get("/v2/models/digit/versions/3").status_code == 429
        loads = client.server_log().count("loaded for requests pinning it")
    assert loads == 1


def test_a_pinned_load_is_allowed_again_after_retry_after(tmp_path: Path) -> None:
    models = digit_folder(tmp_path / "models")
    for version in "23":
        add_version(models, version)
    with serve("asgi", Settings(models_dir=models, pinned_load_interval_seconds=2)) as client:
        assert pin(client, "2").status_code == 200
        refused = pin(client, "3")
        assert refused.status_code == 429
        time.sleep(int(refused.headers["retry-after"]))
        assert pin(client, "3").json()["model"]["version"] == "3"
