"""The service under test, run two ways (in-process on httpx's ASGI transport with the app's lifespan, and a real
uvicorn in a subprocess on a free loopback port), and the shared error-contract assertion."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from anyio.from_thread import start_blocking_portal
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.http.main import create_app
from tests.support.paths import ROOT


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

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


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


def settings_env(settings: Settings) -> dict[str, str]:
    """The DEEPSERVE_* variables that configure a server process as `settings` (every field away from its default)."""
    env = {}
    for name, value in settings.model_dump().items():
        if value != Settings.model_fields[name].default:
            env[f"DEEPSERVE_{name.upper()}"] = ",".join(value) if isinstance(value, list) else str(value)
    return env


@contextmanager
def uvicorn_client(
    settings: Settings, preexec_fn: Callable[[], None] | None = None, host: str = "127.0.0.1"
) -> Iterator[httpx.Client]:
    """A real uvicorn server in a subprocess on a free port of `host` (loopback by default), configured through the
    environment; `preexec_fn` runs in the server process before it starts (e.g. to lower a resource limit)."""
    port = free_port()
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.http.main:create_app"]
    command += ["--host", host, "--port", str(port)]
    command += ["--no-proxy-headers"]  # as every command that runs the service: the app reads X-Forwarded-For itself
    # The server's log goes to a file: a pipe nobody reads fills after a few hundred requests (one JSON line each)
    # and then blocks the server mid-request.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([*command, "--no-access-log"], cwd=ROOT, env=env, stderr=log, preexec_fn=preexec_fn)
    client = httpx.Client(base_url=f"http://{host}:{port}", timeout=30)
    client.server_log = lambda: (log.seek(0), log.read().decode(errors="replace"))[1]  # type: ignore[attr-defined]
    client.pid = server.pid  # type: ignore[attr-defined]
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
def cli_client(
    models: Path, workers: int, env: dict[str, str], open_files: int | None = None
) -> Iterator[httpx.Client]:
    """`deepserve serve --workers N` as a user starts it, on a free loopback port, with `env` added (DEEPSERVE_*
    settings), in its own process group so that it stops with its workers (`open_files`: its RLIMIT_NOFILE). The
    client opens a new connection for every request, so that the requests spread over the workers; `client.pid` is
    the supervisor's, `client.port` the port."""
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--models", str(models)]
    log = tempfile.TemporaryFile()
    limit = None if open_files is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files,) * 2)
    server = subprocess.Popen(
        [*command, "--workers", str(workers)],
        cwd=ROOT,
        env={**os.environ, **env},
        stderr=log,
        start_new_session=True,
        preexec_fn=limit,
    )
    no_keep_alive = httpx.Limits(max_keepalive_connections=0)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=no_keep_alive)
    client.server_log = lambda: (log.seek(0), log.read().decode(errors="replace"))[1]  # type: ignore[attr-defined]
    client.pid, client.port = server.pid, port  # type: ignore[attr-defined]
    try:
        deadline, ready = time.monotonic() + 60, 0
        while ready < 10:  # in a row, on new connections: every worker is ready (or one was asked 10 times running)
            try:
                ready = ready + 1 if client.get("/health/ready").status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            if ready:
                continue
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"deepserve serve did not get ready: {client.server_log()[-2000:]}")
            time.sleep(0.1)
        while workers > 1 and len(answered_by(client)) < workers:  # once one is ready, only ready ones get connections
            if time.monotonic() > deadline:
                raise RuntimeError(f"a worker did not get ready: {client.server_log()[-2000:]}")
            client.get("/health/live")
        yield client
    finally:
        client.close()
        os.killpg(server.pid, signal.SIGTERM)  # the supervisor and its workers
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def answered_by(client: httpx.Client) -> set[str]:
    """The workers that have answered a request (deepserve_worker_requests_total); every one when /metrics is closed."""
    response = client.get("/metrics")
    if response.status_code != 200:
        return {str(i) for i in range(64)}
    found = re.finditer(r'^deepserve_worker_requests_total\{worker="(\d+)"\} (\S+)$', response.text, re.M)
    return {m.group(1) for m in found if float(m.group(2)) > 0}


@contextmanager
def ray_client(cluster, settings: Settings, replicas: int = 2) -> Iterator[httpx.Client]:
    """The app on Ray Serve (app/http/ray_serve.py): `replicas` replicas on the running two-node `cluster`, configured
    as `settings`, behind Serve's HTTP proxy."""
    cluster.run(replicas, settings_env(settings))
    with httpx.Client(base_url=cluster.url, timeout=60) as client:
        yield client


# Where the contract tests run the service: in-process, behind uvicorn, and (DEEPSERVE_TEST_RAY=1, with the [ray]
# extra; `make test-ray`) on Ray Serve's proxy in front of two replicas on a local two-node cluster.
RAY = bool(os.environ.get("DEEPSERVE_TEST_RAY"))
MODES = ["asgi", "uvicorn", *(["ray"] if RAY else [])]
SERVER_MODES = MODES[1:]  # real HTTP servers


@contextmanager
def serve(mode: str, settings: Settings):
    with (asgi_client if mode == "asgi" else uvicorn_client)(settings) as client:
        yield client
