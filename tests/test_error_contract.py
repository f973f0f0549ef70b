"""The error contract beyond bad input: bugs answer with the one body and keep the connection, 405 says Allow."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from tests.conftest import assert_error, serve
from tests.digit_images import render

PNG = render(7, "mnist_28")


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
