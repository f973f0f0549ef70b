"""`deepserve serve --workers 2`: what a user sees is one service, whichever process answers, however the client
opens its connections (app/workers). The client of `cli_client` opens a new connection for every request; the
supervisor hands each to the worker with the fewest open connections (ties in turn), so they alternate."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.manifest import read_manifest, save_entry
from tests.support.paths import COMMITTED_MODELS, ROOT
from tests.support.raw_http import read_response
from tests.support.service import cli_client
from tests.support.versions import digit_folder

DIGIT_ONLY = {"DEEPSERVE_MODELS": "digit"}


def samples(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def per_worker(client: httpx.Client) -> dict[str, float]:
    """Responses each worker process has sent so far (deepserve_worker_requests_total, by worker index)."""
    found = samples(client).items()
    return {dict(labels)["worker"]: v for (name, labels), v in found if name == "deepserve_worker_requests_total"}


def workers_of(supervisor: int) -> dict[str, int]:
    """The supervisor's worker processes: worker index -> pid."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == supervisor:
                index = next(v for v in environ if v.startswith(b"DEEPSERVE_WORKER_INDEX=")).split(b"=")[1]
                children[index.decode()] = int(entry)
    return children


def versions(client: httpx.Client, requests: int = 40) -> set[str]:
    """The digit versions answered to `requests` requests on new connections (they alternate between workers)."""
    return {client.get("/models/digit").json()["version"] for _ in range(requests)}


def both_ready(client: httpx.Client, timeout: float = 60) -> None:
    """Until both workers answer (new connections go only to ready workers once one is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = per_worker(client)
        versions(client, 10)
        after = per_worker(client)
        if all(after.get(w, 0) > before.get(w, 0) for w in ("0", "1")):
            return
        time.sleep(0.2)
    raise TimeoutError("a worker never got ready")


@pytest.fixture
def digit_models(tmp_path: Path) -> Path:
    """The committed digit model, as version 1 (promoted) and a copy of it as version 9."""
    models = digit_folder(tmp_path / "models")
    served = read_manifest(models).served()["digit"]
    shutil.copytree(models / served.path, models / "digit" / "9")
    save_entry(models, served.model_copy(update={"version": "9", "path": "digit/9"}))
    return models


@pytest.mark.slow
def test_a_reload_is_done_in_every_worker_when_it_answers(digit_models: Path) -> None:
    with cli_client(digit_models, 2, DIGIT_ONLY) as client:
        assert versions(client) == {"1"}
        reloaded = client.post("/admin/models/digit/reload?version=9")  # one process gets it
        assert reloaded.status_code == 200 and reloaded.json()["version"] == "9"
        assert versions(client) == {"9"}  # at once, in both: no catching up
        assert client.post("/admin/models/digit/reload").json()["version"] == "1"  # back to the promoted one
        assert versions(client) == {"1"}
        assert len(per_worker(client)) == 2  # both answered


@pytest.mark.slow
def test_a_reload_one_worker_cannot_finish_changes_nothing_anywhere(digit_models: Path) -> None:
    env = {**DIGIT_ONLY, "DEEPSERVE_RELOAD_TIMEOUT_SECONDS": "2"}
    with cli_client(digit_models, 2, env) as client, httpx.Client(base_url=client.base_url, timeout=30) as kept:
        both_ready(client)
        before = per_worker(client)
        for _ in range(5):  # one keep-alive connection: on one worker from now on
            assert kept.get("/health/live").status_code == 200
        after = per_worker(client)  # (+1 somewhere for the /metrics request before)
        mine = next(w for w in after if after[w] - before.get(w, 0) >= 5)
        other = workers_of(client.pid)[str(1 - int(mine))]
        os.kill(other, signal.SIGSTOP)
        try:
            refused = kept.post("/admin/models/digit/reload?version=9")
        finally:
            os.kill(other, signal.SIGCONT)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "model_not_ready"
        assert "did not load" in refused.json()["error"]["message"]
        time.sleep(1)  # the stopped worker now prepares, then drops, version 9
        assert versions(client) == {"1"}
        assert kept.get("/models/digit").json()["version"] == "1"


@pytest.mark.slow
def test_a_worker_started_again_takes_traffic_only_once_ready_and_serves_the_reloaded_version(
    digit_models: Path,
) -> None:
    body = (ROOT / "examples" / "digit.png").read_bytes()
    with cli_client(digit_models, 2, DIGIT_ONLY) as client:
        assert client.post("/admin/models/digit/reload?version=9").status_code == 200
        before = per_worker(client)
        os.kill(workers_of(client.pid)["0"], signal.SIGKILL)
        statuses, answered = [], set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the new worker 0 has answered 20 requests
            response = client.post("/predict/digit", content=body, headers={"content-type": "image/png"})
            statuses.append(response.status_code)
            answered.add(response.json().get("model", {}).get("version"))
            if len(statuses) % 20 == 0 and per_worker(client)["0"] >= before["0"] + 20:
                break
        assert per_worker(client)["0"] >= before["0"] + 20, "the new worker never took traffic"
        assert set(statuses) == {200}, statuses  # the one still loading got none of them
        assert answered == {"9"}
        assert versions(client) == {"9"}  # the new worker serves what the other serves, not the promoted version


async def burst(port: int, connections: int, requests: int) -> None:
    """`connections` keep-alive connections opened together, each then sending `requests` GETs one after another."""
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(requests):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            await reader.readexactly(length)
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(connections)))


@pytest.mark.slow
def test_connections_opened_in_a_burst_spread_over_the_workers() -> None:
    """20 trials each of 8 and of 32 connections opened together: the busiest worker never answers more than 60%
    of a trial's requests (uvicorn's shared socket gave 7 of 8 connections to one process)."""
    with cli_client(COMMITTED_MODELS, 2, DIGIT_ONLY) as client:
        shares = []
        for connections in [8] * 20 + [32] * 20:
            before = per_worker(client)
            asyncio.run(burst(client.port, connections, 20))
            time.sleep(0.2)  # the last trial's connections are closed, and the supervisor has been told
            after = per_worker(client)
            counts = [after.get(w, 0) - before.get(w, 0) for w in ("0", "1")]
            shares.append(max(counts) / sum(counts))
        assert max(shares) <= 0.6, shares


@pytest.mark.slow
def test_half_sent_requests_are_closed_and_never_exhaust_the_open_files() -> None:
    """With 512 open files per process, 700 connections that send half a request or nothing: each is closed
    (408 for half the headers, after the keep-alive timeout for nothing), and a real request meanwhile is answered.
    uvicorn held every one of them for ever, and at the file limit stopped accepting anyone."""
    env = {**DIGIT_ONLY, "DEEPSERVE_HEADER_TIMEOUT_SECONDS": "1", "DEEPSERVE_KEEP_ALIVE_SECONDS": "1"}
    with cli_client(COMMITTED_MODELS, 2, env, open_files=512) as client:
        held = []
        for i in range(700):
            sock = socket.create_connection(("127.0.0.1", client.port), timeout=20)
            if i % 2:
                sock.sendall(b"POST /predict/digit HTTP/1.1\r\nHost: x\r\nContent-")  # and then nothing
            held.append(sock)
        assert client.get("/health/ready", timeout=30).status_code == 200
        statuses = []
        for i, sock in enumerate(held):
            if i % 2:
                status, _, body, closed = read_response(sock)
                statuses.append(status)
                assert closed and b"request_timeout" in body
            else:
                assert sock.recv(1) == b""  # closed without a word
            sock.close()
        assert set(statuses) == {408}
        assert "Too many open files" not in client.server_log()


def test_metrics_count_the_requests_of_every_worker(tmp_path: Path) -> None:
    env = {"DEEPSERVE_DATA_DIR": str(tmp_path / "data"), **DIGIT_ONLY}
    live = ("deepserve_requests_total", (("method", "GET"), ("route", "/health/live"), ("status", "200")))
    with cli_client(COMMITTED_MODELS, 2, env) as client:
        before, workers_before = samples(client).get(live, 0), per_worker(client)
        for _ in range(200):
            assert client.get("/health/live").status_code == 200
        found = samples(client)
        workers = per_worker(client)
    assert found[live] - before == 200
    assert found[("deepserve_model_ready", (("model", "digit"),))] == 1
    answered = [workers[w] - workers_before.get(w, 0) for w in ("0", "1")]
    assert min(answered) >= 100  # new connections alternate (and /metrics reads one)


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(the head up to its blank line, what came after it in the same reads)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_answers_leave_whole_for_head_requests_closing_connections_and_100_continue() -> None:
    """The workers write an answer's head with its body (app/workers/protocol.py HeldHead): a HEAD answer (no body)
    still gets its head, a closing connection gets the whole answer first, and `100 Continue` is never held back
    (the client waits for it before sending its body)."""
    digit = (ROOT / "examples" / "digit.png").read_bytes()
    with cli_client(COMMITTED_MODELS, 1, DIGIT_ONLY) as client:
        with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
            sock.sendall(b"HEAD /static/playground.js HTTP/1.1\r\nHost: x\r\n\r\n")
            head, rest = read_head(sock)
            assert head.startswith(b"HTTP/1.1 200") and b"content-length: " in head.lower() and rest == b""
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, _, body, closed = read_response(sock)
            assert status == 200 and b"alive" in body and closed
        with socket.create_connection(("127.0.0.1", client.port), timeout=10) as sock:
            sock.sendall(
                b"POST /predict/digit HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                + f"Expect: 100-continue\r\nContent-Length: {len(digit)}\r\n\r\n".encode()
            )
            head, _ = read_head(sock)
            assert head == b"HTTP/1.1 100 Continue"
            sock.sendall(digit)
            status, _, body, _ = read_response(sock)
            assert status == 200 and json.loads(body)["digit"] == 7
