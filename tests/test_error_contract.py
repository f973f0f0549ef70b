"""The error contract beyond bad input: bugs answer with the one body and keep the connection, 405 says Allow."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.errors import ERROR_TABLE
from tests.support.digit_images import noise_png, render
from tests.support.paths import COMMITTED_MODELS, ROOT, without_explanations
from tests.support.raw_http import read_response, stalled_upload
from tests.support.service import assert_error, serve
from tests.support.versions import digit_with_a_worse_candidate

PNG = render(7, "mnist_28")
NOISE_PNG = noise_png()
BOOT = (ROOT / "examples" / "ankle_boot.jpg").read_bytes()


def test_a_bug_answers_internal_error_with_the_request_id_and_logs_the_traceback(
    trained_models_dir: Path, service_log
) -> None:
    with serve("asgi", Settings(models_dir=trained_models_dir)) as client:
        runtime = client.app.state.registry.records["digit"].runtime

        def broken(batch):
            raise RuntimeError("secret internal state /srv/model.onnx")

        runtime.predict = broken
        headers = {"content-type": "image/png", "x-request-id": "r1"}
        response = client.post("/predict/digit", content=PNG, headers=headers)
        error = assert_error(response, 500, "internal_error")
        assert error["detail"] == {"request_id": "r1"} and "secret" not in response.text
        assert "RuntimeError: secret internal state" in service_log.text() or any(
            r.exc_info and "secret internal state" in str(r.exc_info[1]) for r in service_log.records
        )
        del runtime.predict  # the class's own predict again
        assert client.post("/predict/digit", content=PNG, headers={"content-type": "image/png"}).status_code == 200


def test_405_lists_the_allowed_methods(trained_models_dir: Path) -> None:
    with serve("asgi", Settings(models_dir=trained_models_dir)) as client:
        response = client.get("/predict/digit")
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"



# One real request per row of ERROR_TABLE: (settings for the app, beyond models_dir; the request). A new error type
# without a row here fails test_every_error_type_is_reached_by_a_real_request.
IMAGE, PLAIN = {"content-type": "image/png"}, {"content-type": "text/plain"}


def post_png(client, data: bytes = PNG):
    return client.post("/predict/digit", content=data, headers=IMAGE)


def overloaded(client):
    limiter = client.app.state.limiter
    limiter.in_flight = limiter.limit  # every slot taken
    try:
        return post_png(client)
    finally:
        limiter.in_flight = 0


def stalled_upload_times_out(client):
    """Headers and 8 bytes of a 1,000-byte body, then nothing: a raw socket, so it needs the uvicorn server."""
    with stalled_upload(client.base_url.port, "/predict/digit") as sock:
        status, headers, body, _ = read_response(sock)
    return httpx.Response(status, headers=headers, content=body)


def internal_error(client):
    runtime = client.app.state.registry.records["digit"].runtime
    runtime.predict = None  # calling it raises TypeError: a bug
    try:
        return post_png(client)
    finally:
        del runtime.predict


def reload_fails(client):
    registry = client.app.state.registry

    def corrupt(entry):
        raise ValueError("the artifact's model.onnx is corrupt")

    registry._build = corrupt
    try:
        return client.post("/admin/models/digit/reload")
    finally:
        del registry._build


def unusable_data_dir() -> dict:
    """A data folder under a regular file: no process can create it, root included."""
    folder = Path(tempfile.mkdtemp(prefix="unusable-"))
    atexit.register(shutil.rmtree, folder, True)
    parent = folder / "file"
    parent.write_text("not a folder")
    return {"data_dir": parent / "data"}


REACH: dict[str, tuple[dict | Callable[[], dict], Callable]] = {
    "request_timeout": ({"body_timeout_seconds": 1.0}, stalled_upload_times_out),
    "malformed_body": ({}, lambda c: c.post("/predict/sentiment", content=b"{", headers={"content-type": "application/json"})),
    "invalid_image": ({}, lambda c: post_png(c, b"\x89PNG junk")),
    "unauthorized": ({"api_keys": ["k" * 32]}, lambda c: c.get("/models")),
    "forbidden": ({"api_keys": ["k" * 32], "admin_keys": ["a" * 32]}, lambda c: c.post("/admin/models/digit/reload", headers={"x-api-key": "k" * 32})),
    "not_found": ({}, lambda c: c.get("/no/such/route")),
    "model_not_found": ({}, lambda c: c.get("/models/resnet")),
    "stream_not_found": ({}, lambda c: c.get("/anomaly/streams/never-created")),
    "too_many_streams": (
        {"max_streams": 1},
        lambda c: [c.post(f"/anomaly/streams/{name}/points", json={"values": [1.0]}) for name in "ab"][1],
    ),
    "method_not_allowed": ({}, lambda c: c.get("/predict/digit")),
    "payload_too_large": ({}, lambda c: post_png(c, b"\0" * (5 << 20))),
    "image_too_large": ({"max_image_pixels": 100}, lambda c: post_png(c, render(3, "black_on_white"))),
    "unsupported_media_type": ({}, lambda c: c.post("/predict/digit", content=PNG, headers=PLAIN)),
    "invalid_input": ({}, lambda c: c.post("/predict/sentiment", json={})),
    # Noise sent to the committed digit model (calibrated: its model.json has out-of-distribution thresholds).
    "out_of_distribution": ({"models_dir": COMMITTED_MODELS, "models": ["digit"]}, lambda c: c.post("/predict/digit?reject_ood=true", content=NOISE_PNG, headers=IMAGE)),
    "artifact_invalid": ({}, reload_fails),
    "promotion_refused": (lambda: {"models_dir": digit_with_a_worse_candidate()}, lambda c: c.post("/admin/models/digit/reload?version=2")),
    "overloaded": ({}, overloaded),
    "rate_limited": ({"rate_limit_per_second": 0.001, "rate_limit_burst": 1}, lambda c: [c.get("/models") for _ in "ab"][1]),
    "internal_error": ({}, internal_error),
    "model_not_ready": ({"models_dir": Path("/no/such/models"), "models": ["digit"]}, post_png),
    "storage_unavailable": (unusable_data_dir, lambda c: c.get("/anomaly/streams")),
    "model_not_installed": ({}, lambda c: c.post("/predict/sentiment", json={"text": "hi", "model": "distilbert"})),
    # A copy of the committed fashion model without its explanation export (and with no model.keras to export from).
    "explanation_unavailable": (lambda: {"models_dir": without_explanations("fashion")}, lambda c: c.post("/explain/image?model=fashion", files={"file": ("b.jpg", BOOT, "image/jpeg")})),
}


def test_every_error_type_is_reached_by_a_real_request() -> None:
    assert set(REACH) == set(ERROR_TABLE)


@pytest.mark.parametrize("type_", sorted(REACH))
def test_error_type_answers_with_its_table_status(all_models_dir: Path, type_: str) -> None:
    settings, request = REACH[type_]
    settings = settings() if callable(settings) else settings
    mode = "uvicorn" if type_ == "request_timeout" else "asgi"  # the others need the app in-process
    with serve(mode, Settings(**{"models_dir": all_models_dir} | settings)) as client:
        response = request(client)
    assert_error(response, ERROR_TABLE[type_].status, type_)
    header = {405: "allow", 429: "retry-after", 401: "www-authenticate"}.get(response.status_code)
    assert header is None or response.headers[header]
