"""The model lifecycle: the `deepserve` command line (models, promote with its gate, train writing candidates,
predict against a real running service), GET /models/{name}/versions, and requests pinning a version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import cli
from app.config import Settings
from app.manifest import read_manifest, save_entry
from tests.support.digit_images import render
from tests.support.service import uvicorn_client


def run(*args: str):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


@pytest.fixture
def models(tmp_path: Path, trained_models_dir: Path) -> Path:
    """The session's digit artifact (v1, promoted by its training run) and a copy of it as v2 scoring 0.5."""
    out = tmp_path / "models"
    shutil.copytree(trained_models_dir, out)
    first = read_manifest(out).served()["digit"]
    shutil.copytree(out / first.path, out / "digit" / "2")
    metrics = {**first.metrics, "test_accuracy": 0.5}
    save_entry(out, first.model_copy(update={"version": "2", "path": "digit/2", "metrics": metrics}))
    return out


def test_models_lists_served_and_candidates(models: Path) -> None:
    result = run("models", "--models", str(models), "--json")
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["version"], r["status"]) for r in rows] == [("1", "served"), ("2", "candidate")]
    assert rows[1]["metric"] == "test_accuracy" and rows[1]["value"] == 0.5
    table = run("models", "--models", str(models)).output
    assert "digit" in table and "candidate" in table and "test_accuracy 0.5000" in table


def test_promote_refuses_a_worse_candidate_unless_forced(models: Path) -> None:
    refused = CliRunner().invoke(cli.main, ["promote", "digit", "2", "--models", str(models)])
    assert refused.exit_code == 1 and "--force" in refused.output and "0.5" in refused.output
    assert read_manifest(models).served()["digit"].version == "1"
    forced = run("promote", "digit", "2", "--models", str(models), "--force")
    assert "promoted digit v2 (was v1" in forced.output
    assert read_manifest(models).served()["digit"].version == "2"
    unknown = CliRunner().invoke(cli.main, ["promote", "digit", "7", "--models", str(models)])
    assert unknown.exit_code == 1 and "no artifact digit v7" in unknown.output


def test_train_names_the_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    result = CliRunner().invoke(cli.main, ["train", "distilbert", "--tiny"])
    assert result.exit_code == 1
    assert "needs the [distilbert] extra (torch missing): pip install -e '.[distilbert]'" in result.output


@pytest.mark.slow
def test_train_writes_a_candidate_and_promote_reloads_a_running_service(
    tmp_path: Path, models: Path, small_mnist_npz: Path
) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "app.cli", "train", "digit", "--data", str(small_mnist_npz)]
    command += ["--out", str(models), "--epochs", "1", "--limit", "300", "--version", "3"]
    trained = subprocess.run(command, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "a candidate: v1 stays served" in trained.stdout
    assert read_manifest(models).served()["digit"].version == "1"
    with uvicorn_client(Settings(models_dir=models)) as client:
        url = str(client.base_url)
        digit = tmp_path / "seven.png"
        digit.write_bytes(render(7, "mnist_28"))
        answer = json.loads(run("predict", "digit", str(digit), "--url", url).output)
        direct = client.post("/predict/digit", content=digit.read_bytes(), headers={"content-type": "image/png"})
        assert answer == direct.json() and answer["model"] == {"name": "digit", "version": "1"}
        promoted = run("promote", "digit", "3", "--models", str(models), "--url", url, "--force")
        assert "serving v3" in promoted.output
        assert client.get("/models/digit").json()["version"] == "3"
        missing = CliRunner().invoke(cli.main, ["predict", "lstm", "Not bad at all.", "--url", url])
        assert missing.exit_code == 1 and "503 model_not_installed" in missing.output
        no_file = CliRunner().invoke(cli.main, ["predict", "digit", str(tmp_path / "none.png"), "--url", url])
        assert no_file.exit_code == 2 and "no such file" in no_file.output  # a usage error, like a wrong name


def test_versions_route_lists_served_and_candidates(models: Path) -> None:
    from tests.support.service import serve

    with serve("asgi", Settings(models_dir=models)) as client:
        versions = client.get("/models/digit/versions").json()
        assert [(v["version"], v["status"]) for v in versions] == [("1", "served"), ("2", "candidate")]
        assert versions[1]["metrics"]["test_accuracy"] == 0.5 and versions[0]["data"].startswith("sha256:")
        assert client.get("/models/nope/versions").json()["error"]["type"] == "model_not_found"


def test_a_request_can_pin_a_version_and_pinned_versions_are_bounded(models: Path) -> None:
    from tests.support.service import serve

    third = read_manifest(models).versions("digit")[0]
    shutil.copytree(models / third.path, models / "digit" / "3")
    save_entry(models, third.model_copy(update={"version": "3", "path": "digit/3"}))
    png = {"content": render(4, "mnist_28"), "headers": {"content-type": "image/png"}}
    pins = {"max_pinned_versions": 1, "pinned_load_interval_seconds": 0}  # every pin here may load at once
    settings = Settings(models_dir=models, batch_models=["digit"], **pins)
    with serve("asgi", settings) as client:

        def version(pin: str | None) -> str:
            headers = png["headers"] | ({"x-model-version": pin} if pin else {})
            response = client.post("/predict/digit", content=png["content"], headers=headers)
            assert response.status_code == 200, response.text
            return response.json()["model"]["version"]

        assert [version(None), version("2"), version("1"), version(None)] == ["1", "2", "1", "1"]
        registry, inference = client.app.state.registry, client.app.state.inference
        two = registry.pinned[("digit", "2")]
        assert two in inference.batchers  # a pinned version is batched like the served one
        assert version("3") == "3" and list(registry.pinned) == [("digit", "3")]  # at most one kept: 2 dropped
        assert two not in inference.batchers  # and its batcher with it
        headers = png["headers"] | {"x-model-version": "9"}
        missing = client.post("/predict/digit", content=png["content"], headers=headers)
        assert missing.status_code == 404 and missing.json()["error"]["detail"]["versions"] == ["1", "2", "3"]


def test_every_committed_version_has_its_familys_headline_metric_so_promotion_can_compare() -> None:
    from app.core.promotion import headline, metric
    from tests.support.paths import COMMITTED_MODELS

    manifest = read_manifest(COMMITTED_MODELS)
    names = {entry.name for entry in manifest.served().values()}
    missing = [
        f"{entry.name} v{entry.version}: {headline(entry.name)}"
        for name in sorted(names)
        for entry in manifest.versions(name)
        if metric(entry, headline(name)) is None
    ]
    assert not missing, missing
