"""`deepserve predict` and `deepserve train` as the README uses them, against a real uvicorn serving the committed
models: a task's name asks its default model, the README's own example files work, mistakes are one line naming
what is known (never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import cli
from app.config import Settings
from tests.support.paths import COMMITTED_MODELS, ROOT
from tests.support.service import serve

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve("uvicorn", Settings(models_dir=COMMITTED_MODELS)) as client:
        yield str(client.base_url).rstrip("/")


def predict(url: str, *args: str):
    return CliRunner().invoke(cli.main, ["predict", *args, "--url", url])


def answer(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_tasks_name_asks_its_default_model(url: str) -> None:
    assert answer(predict(url, "sentiment", "Not bad at all."))["model"]["name"] == "minilm"
    assert answer(predict(url, "lstm", "Not bad at all."))["model"]["name"] == "lstm"
    assert answer(predict(url, "digit", str(EXAMPLES / "digit.png")))["model"]["name"] == "digit"
    assert answer(predict(url, "fashion", str(EXAMPLES / "ankle_boot.jpg")))["label"] == "Ankle boot"


def test_the_readmes_series_file_and_plain_lists_go_to_the_default_detector(url: str, tmp_path: Path) -> None:
    example = answer(predict(url, "anomaly", str(EXAMPLES / "series.json")))  # a request with timestamps
    assert example["model"]["name"] == "nearest_context" and any(example["is_anomaly"])
    values = json.loads((EXAMPLES / "series.json").read_text())["values"]
    (tmp_path / "list.json").write_text(json.dumps(values))
    (tmp_path / "lines.txt").write_text("\n".join(map(str, values)))
    timestamps = json.loads((EXAMPLES / "series.json").read_text())["timestamps"]
    rows = (f"{t},{v}" for t, v in zip(timestamps, values, strict=True))
    (tmp_path / "series.csv").write_text("timestamp,value\n" + "\n".join(rows))
    for name in ("list.json", "lines.txt", "series.csv"):
        body = answer(predict(url, "anomaly", str(tmp_path / name)))
        assert body["model"]["name"] == "nearest_context" and body["is_anomaly"] == example["is_anomaly"], name
    assert answer(predict(url, "autoencoder", str(tmp_path / "list.json")))["model"]["name"] == "anomaly"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sentimnet", "great"], "unknown name 'sentimnet'; use one of: digit, "),
        (["digit", "no/such.png"], "no such file: no/such.png"),
        (["anomaly", "README.md"], "line "),  # a file that is not a series
    ],
)
def test_mistakes_are_one_line_naming_what_is_known(url: str, args: list[str], expected: str) -> None:
    result = predict(url, *args)
    assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output


def test_train_help_is_the_scripts_own() -> None:
    result = CliRunner().invoke(cli.main, ["train", "digit", "--help"])  # the script prints it and exits 0
    assert result.exit_code == 0
    result = subprocess.run([sys.executable, "-m", "app.cli", "train", "digit", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0 and "--epochs" in result.stdout and "--wide" in result.stdout
    assert "candidate" in CliRunner().invoke(cli.main, ["train", "--help"]).output  # the command's own
    unknown = CliRunner().invoke(cli.main, ["train", "dgt"])
    assert unknown.exit_code == 2 and "use one of: anomaly, digit" in unknown.output


@pytest.mark.slow
def test_training_without_data_and_without_internet_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    """No network here (a proxy that refuses everything, whatever the machine has): the download fails, and the
    script says what it could not fetch and which flag takes a local copy."""
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "KERAS_HOME": str(tmp_path / "keras")}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "app.cli", "train", "digit", "--out", str(tmp_path / "models")],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "could not download MNIST" in result.stderr and "--data" in result.stderr
