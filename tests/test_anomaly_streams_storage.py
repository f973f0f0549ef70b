"""A data folder the service cannot use (full, read-only, not a folder, a corrupt file) answers 503
`storage_unavailable` on every stream route, never a 500, while the other routes keep working; a real uvicorn each
time. Full is a real file-size limit (RLIMIT_FSIZE, which binds root too) or a tiny tmpfs; read-only is a read-only
mount (both need mount privileges: skipped without them) or a data folder under a regular file (any machine)."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.support.paths import COMMITTED_MODELS
from tests.support.seasonal import seasonal
from tests.support.service import assert_error, uvicorn_client

pytestmark = pytest.mark.slow  # real servers
DETECTOR = {"models_dir": COMMITTED_MODELS, "models": ["nearest_context"]}
VALUES = seasonal()[:400].tolist()  # a stream of 400 points: a row of some tens of KB


def post(client: httpx.Client, series_id: str) -> httpx.Response:
    return client.post(f"/anomaly/streams/{series_id}/points", json={"values": VALUES})


def fill(client: httpx.Client, most: int = 60) -> list[httpx.Response]:
    """New streams until the storage refuses one (or `most`); every answer."""
    answers = []
    for i in range(most):
        answers.append(post(client, f"s{i}"))
        if answers[-1].status_code != 200:
            break
    return answers


def assert_unavailable(response: httpx.Response) -> dict:
    error = assert_error(response, 503, "storage_unavailable")
    assert "DEEPSERVE_DATA_DIR" in error["message"] and error["detail"]["reason"]
    return error


def assert_stream_routes_answer_503_or_work(client: httpx.Client) -> list[int]:
    """Every stream route: a documented answer (503 storage_unavailable, or the route's own), never a 500."""
    answers = [
        client.get("/anomaly/streams"),
        client.get("/anomaly/streams/s0"),
        post(client, "s0"),
        post(client, "brand-new"),
        client.delete("/anomaly/streams/s1"),
    ]
    for response in answers:
        assert response.status_code in (200, 204, 404, 503), response.text
        if response.status_code == 503:
            assert_unavailable(response)
    return [response.status_code for response in answers]


def assert_other_routes_work(client: httpx.Client) -> None:
    assert client.get("/health/ready").status_code == 200
    assert client.get("/models").status_code == 200
    assert client.post("/predict/anomaly", json={"values": VALUES}).status_code == 200


def file_size_limit(limit: int):
    """In the server process: files may grow to `limit` bytes; a write beyond fails with EFBIG (no signal)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_answers_503_on_stream_routes_and_the_rest_works(tmp_path: Path) -> None:
    settings = Settings(**DETECTOR, data_dir=tmp_path / "data")
    with uvicorn_client(settings, preexec_fn=file_size_limit(400_000)) as client:
        answers = fill(client)
        assert answers[0].status_code == 200 and len(answers) > 1, "the limit left no room for one stream"
        assert_unavailable(answers[-1])
        assert_stream_routes_answer_503_or_work(client)  # (a checkpoint may have made room again meanwhile)
        assert_other_routes_work(client)


def test_a_data_folder_under_a_regular_file_answers_503_and_the_rest_works(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    settings = Settings(**DETECTOR, data_dir=tmp_path / "file" / "data")
    with uvicorn_client(settings) as client:
        assert set(assert_stream_routes_answer_503_or_work(client)) == {503}
        assert_other_routes_work(client)
        log = client.server_log()
    assert log.count("cannot be used") == 1  # one ERROR line for the operator, not one per request


def test_a_corrupt_streams_file_answers_503_until_the_operator_removes_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "anomaly_streams.sqlite3").write_bytes(b"this is not an SQLite file\n" * 1000)
    with uvicorn_client(Settings(**DETECTOR, data_dir=data)) as client:
        assert set(assert_stream_routes_answer_503_or_work(client)) == {503}
        assert "not a database" in assert_unavailable(client.get("/anomaly/streams"))["detail"]["reason"]
        assert_other_routes_work(client)
        (data / "anomaly_streams.sqlite3").rename(data / "corrupt.sqlite3")  # the operator's fix; no restart
        assert post(client, "s0").status_code == 200 and client.get("/anomaly/streams/s0").json()["points"] == 400


@contextmanager
def mounted(folder: Path, *options: str) -> Iterator[Path]:
    """`mount options... folder` (a tmpfs, a bind mount), unmounted at the end; a skip where mounting is not
    allowed (not root, or a container without CAP_SYS_ADMIN)."""
    folder.mkdir(exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", *options, str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def remount_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)


def test_a_full_then_read_only_filesystem_answers_503_and_the_rest_works(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with mounted(data, "-t", "tmpfs", "-o", "size=256k,mode=0755", f"tmpfs-{uuid.uuid4().hex[:8]}"):
        with uvicorn_client(Settings(**DETECTOR, data_dir=data)) as client:
            answers = fill(client)
            assert answers[0].status_code == 200 and len(answers) > 1
            assert "full" in assert_unavailable(answers[-1])["detail"]["reason"]
            assert_other_routes_work(client)
            subprocess.run(["mount", "-o", "remount,ro", str(data)], check=True)
            assert assert_stream_routes_answer_503_or_work(client).count(503) >= 1
            assert_other_routes_work(client)


def test_a_read_only_data_folder_with_streams_answers_503_and_the_rest_works(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with uvicorn_client(Settings(**DETECTOR, data_dir=data)) as client:  # streams written while it was writable
        assert [post(client, f"s{i}").status_code for i in range(3)] == [200] * 3
    with mounted(data, "--bind", str(data)):
        remount_read_only(data)
        with uvicorn_client(Settings(**DETECTOR, data_dir=data)) as client:
            assert assert_stream_routes_answer_503_or_work(client).count(503) >= 2  # at least the two writes
            assert_other_routes_work(client)
