"""Shared fixtures: a real digit artifact trained in this session, and clients for the app run two ways."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from anyio.from_thread import start_blocking_portal
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
COMMITTED_MODELS = ROOT / "models"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def sklearn_digits_28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 real handwritten digits), upscaled into MNIST's 20-in-28 layout."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for small in digits.images:
        big = Image.fromarray((small * (255 / 16)).astype(np.uint8)).resize((20, 20), Image.Resampling.BILINEAR)
        canvas = np.zeros((28, 28), dtype=np.uint8)
        canvas[4:24, 4:24] = np.asarray(big)
        images.append(canvas)
    return np.stack(images), digits.target.astype(np.uint8)


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
    from tests.imdb_like import write_corpus
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
    from tests.transfer_images import make_image_folder
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
    from tests.test_train_anomaly import TINY, write_nab_root
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
    distilbert, which stays not installed): for tests that cross endpoints."""
    from app.manifest import add_to_manifest, read_manifest

    out = tmp_path_factory.mktemp("all_models")
    for source in (trained_models_dir, lstm_models_dir, anomaly_models, image_models_dir):
        for entry in read_manifest(source).models:
            shutil.copytree(source / entry.path, out / entry.path)
            add_to_manifest(out, entry)
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


def assert_error(response, status: int, type_: str) -> dict:
    """The shared error contract: this status, one JSON body {"error": {type, message, detail}}, this type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "detail"}
    assert body["error"]["type"] == type_ and body["error"]["message"]
    return body["error"]


def wait_ready(get, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = get("/health/ready")
        if response.status_code == 200 or response.json()["status"] != "not_ready":
            return
        if all(state != "loading" for state in response.json()["models"].values()):
            return  # Loading finished; some model failed. Tests assert on that themselves.
        time.sleep(0.05)
    raise TimeoutError("service did not finish loading models")


class PortalClient:
    """A synchronous face for httpx.AsyncClient on an ASGI transport, so one test body serves both modes."""

    def __init__(self, portal, client: httpx.AsyncClient, app) -> None:
        self.portal, self.client, self.app = portal, client, app

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        content = kwargs.get("content")
        if content is not None and not isinstance(content, bytes | str):
            chunks = content  # A sync generator (a chunked upload) must become an async one here.

            async def stream():
                for chunk in chunks:
                    yield chunk

            kwargs["content"] = stream()

        async def send() -> httpx.Response:
            return await self.client.request(method, url, **kwargs)

        return self.portal.call(send)

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@contextmanager
def asgi_client(settings: Settings) -> Iterator[PortalClient]:
    """In-process: the app's lifespan runs (models load), requests go through httpx's ASGI transport."""
    app = create_app(settings)

    async def start() -> tuple[LifespanManager, httpx.AsyncClient]:
        manager = LifespanManager(app, startup_timeout=120)
        await manager.__aenter__()
        transport = httpx.ASGITransport(app=manager.app)
        return manager, httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def stop(manager: LifespanManager, client: httpx.AsyncClient) -> None:
        await client.aclose()
        await manager.__aexit__(None, None, None)

    with start_blocking_portal() as portal:
        manager, client = portal.call(start)
        try:
            wrapped = PortalClient(portal, client, app)
            wait_ready(wrapped.get)
            yield wrapped
        finally:
            portal.call(stop, manager, client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_client(settings: Settings) -> Iterator[httpx.Client]:
    """A real uvicorn server in a subprocess on a free loopback port, configured through the environment."""
    port = free_port()
    env = dict(os.environ)
    for name, value in settings.model_dump().items():  # every field set away from its default
        if value != Settings.model_fields[name].default:
            env[f"DEEPSERVE_{name.upper()}"] = ",".join(value) if isinstance(value, list) else str(value)
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", str(port)]
    # The server's log goes to a file: a pipe nobody reads fills after a few hundred requests (one JSON line each)
    # and then blocks the server mid-request.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([*command, "--no-access-log"], cwd=ROOT, env=env, stderr=log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    client.server_log = lambda: (log.seek(0), log.read().decode(errors="replace"))[1]  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/health/live")
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start: {client.server_log()[-2000:]}") from None
                time.sleep(0.1)
        wait_ready(client.get)
        yield client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)
        log.close()


@contextmanager
def serve(mode: str, settings: Settings):
    with (asgi_client if mode == "asgi" else uvicorn_client)(settings) as client:
        yield client


@pytest.fixture(scope="session", params=["asgi", "uvicorn"])
def client(request: pytest.FixtureRequest, trained_models_dir: Path):
    """The service on the session's trained artifact, in-process and behind a real uvicorn."""
    with serve(request.param, Settings(models_dir=trained_models_dir)) as c:
        yield c
