"""Shared fixtures: the artifacts each family trains once per session, and the digit service run two ways.

Helpers that are not fixtures (data generators, the service runners, raw HTTP) live in tests/support/."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from tests.support.digit_images import sklearn_digits_28
from tests.support.paths import COMMITTED_MODELS
from tests.support.service import MODES, ray_client, serve

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Services the tests start keep their state (anomaly streams) in a scratch folder, never in the checkout.
os.environ.setdefault("DEEPSERVE_DATA_DIR", tempfile.mkdtemp(prefix="deepserve-test-data-"))


@pytest.fixture(scope="session")
def small_mnist_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = sklearn_digits_28()
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    np.savez(path, x_train=x[:1500], y_train=y[:1500], x_test=x[1500:], y_test=y[1500:])
    return path


@pytest.fixture(scope="session")
def trained_models_dir(tmp_path_factory: pytest.TempPathFactory, small_mnist_npz: Path) -> Path:
    """A real digit artifact (Keras -> ONNX) trained for a few epochs on real handwritten digits."""
    from training import train_digit

    out = tmp_path_factory.mktemp("models")
    train_digit.main(["--data", str(small_mnist_npz), "--out", str(out), "--epochs", "4", "--no-augment"])
    return out


@pytest.fixture(scope="session")
def lstm_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) LSTM artifact: two networks of ~70 training steps averaged, Keras -> ONNX, tokenizer.json,
    metrics and plots."""
    from tests.support.imdb_like import write_corpus
    from training import train_lstm_sentiment

    data = tmp_path_factory.mktemp("imdb_like")
    write_corpus(data)
    out = tmp_path_factory.mktemp("models")
    args = ["--data", str(data), "--out", str(out), "--vocab-size", "64", "--max-length", "32"]
    args += ["--embed-dim", "16", "--units", "16", "--epochs", "4", "--batch-size", "32", "--learning-rate", "0.01"]
    train_lstm_sentiment.main([*args, "--ensemble", "2"])
    return out


@pytest.fixture(scope="session")
def image_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.transfer_images import make_image_folder
    from training import train_transfer

    data = make_image_folder(tmp_path_factory.mktemp("shapes"), per_class=20, validation_per_class=6)
    out = tmp_path_factory.mktemp("image_models")
    args = ["--data", str(data), "--out", str(out), "--weights", "none", "--alpha", "0.35"]
    args += ["--image-size", "96", "--epochs", "6", "--batch-size", "8", "--patience", "6"]
    args += ["--fine-tune-epochs", "1", "--fine-tune-layers", "10"]  # the fine-tuning phase runs too
    train_transfer.main(args)
    return out


@pytest.fixture(scope="session")
def anomaly_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.nab_like import TINY, write_nab_root
    from training.train_anomaly import main

    root = tmp_path_factory.mktemp("nab")
    write_nab_root(root)
    models = tmp_path_factory.mktemp("models")
    main(["--data", str(root), "--out", str(models), *TINY])
    return models


@pytest.fixture(scope="session")
def all_models_dir(
    tmp_path_factory: pytest.TempPathFactory,
    trained_models_dir: Path,
    lstm_models_dir: Path,
    anomaly_models: Path,
    image_models_dir: Path,
) -> Path:
    """One models folder serving every family trained in this session (digit, image, lstm, anomaly; not
    distilbert, which stays not installed) and the committed nearest_context detector (its artifact is its
    settings): for tests that cross endpoints."""
    out = tmp_path_factory.mktemp("all_models")
    for source in (trained_models_dir, lstm_models_dir, anomaly_models, image_models_dir):
        for model in (p for p in source.iterdir() if p.is_dir()):  # its versions (model.json) and promoted.json
            shutil.copytree(model, out / model.name)
    shutil.copytree(COMMITTED_MODELS / "nearest_context", out / "nearest_context")
    return out


class LogCapture(logging.Handler):
    """Records of the service's `deepserve` loggers, for tests that check what the log (not the client) gets."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.getMessage()} {r.__dict__.get('fields', '')}" for r in self.records)


@pytest.fixture
def service_log() -> Iterator[LogCapture]:
    capture = LogCapture()
    logger = logging.getLogger("deepserve")
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local two-node Ray cluster on loopback with Serve's proxy (app/http/ray_serve.py), for the whole session."""
    pytest.importorskip("ray.serve", reason="needs the [ray] extra")
    from app.http.ray_serve import local_cluster

    with local_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session", params=MODES)
def client(request: pytest.FixtureRequest, trained_models_dir: Path):
    """The service on the session's trained artifact, in-process, behind a real uvicorn, and (opt-in) on Ray Serve."""
    settings = Settings(models_dir=trained_models_dir)
    if request.param == "ray":
        with ray_client(request.getfixturevalue("ray_cluster"), settings) as c:
            yield c
        return
    with serve(request.param, settings) as c:
        yield c


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A real uvicorn serving the committed models, for the browser tests (its URL)."""
    with serve("uvicorn", Settings(models_dir=COMMITTED_MODELS)) as client:
        yield str(client.base_url).rstrip("/")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's headless chromium driven by Playwright (tests/support/browser.py)."""
    from tests.support.browser import chromium

    with chromium() as browser:
        yield browser
