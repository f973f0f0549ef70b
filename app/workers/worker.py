"""One worker process of `deepserve serve`, started by the supervisor (app/workers/supervisor.py) with its end of
the channel: `python -m app.workers.worker <fd>`.

It runs the app on uvicorn's Server without a listening socket of its own: connections arrive from the supervisor
and are served from then on by uvicorn's own protocol (app/workers/protocol.py adds the timeouts). It tells the
supervisor when it is up (lifespan done), when its models are loaded (only then does it get connections, unless
no worker is ready yet), and when each connection closes (the supervisor balances on open connections). It takes
part in reloads across workers (app/core/reloads.py) and stops when the supervisor goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import socket
import sys
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from app.config import Settings
from app.core.reloads import Reloader
from app.errors import ERROR_CLASSES, ModelNotReady, ServeError
from app.http.client_address import UVICORN_PROXY_OPTIONS
from app.http.main import create_app
from app.workers import channel
from app.workers.protocol import Protocol

log = logging.getLogger("deepserve.worker")
STARTUP_FAILURE = 3  # uvicorn's exit code when the app's startup fails


def raise_file_limit() -> None:
    """Open files up to the hard limit: each connection is one (the supervisor caps them below it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Link:
    """This worker's end of the channel: connections in, messages both ways, and its part of every reload."""

    def __init__(self, sock: socket.socket, server: WorkerServer, reloader: Reloader) -> None:
        self.sock, self.server, self.reloader = sock, server, reloader
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}  # reloads this worker asked for
        self.outbox: list[bytes] = []

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self.on_readable)
        self.reloader.coordinator = self.reload_everywhere

    def stop(self) -> None:
        self.loop.remove_reader(self.sock.fileno())

    def send(self, data: bytes) -> None:
        self.outbox.append(data)
        if len(self.outbox) == 1:
            self._flush()

    def _flush(self) -> None:
        while self.outbox:
            try:
                self.sock.send(self.outbox[0])
            except BlockingIOError:
                self.loop.add_writer(self.sock.fileno(), self._flush)
                return
            except OSError:
                self.outbox.clear()  # the supervisor is gone; on_readable sees it and stops the worker
                break
            self.outbox.pop(0)
        self.loop.remove_writer(self.sock.fileno())

    def closed(self) -> None:
        self.send(channel.CLOSED)

    def on_readable(self) -> None:
        messages, fds, closed = channel.receive(self.sock)
        connections = iter(fds)
        for data in messages:
            if data == channel.CONNECTION:
                self.server.adopt(next(connections))
            else:
                self.on_message(json.loads(data))
        if closed:
            log.error("the supervisor is gone; stopping")
            self.stop()
            for future in self.waiting.values():
                if not future.done():
                    future.set_result({"ok": False, "error": {"status": 503, "type": "model_not_ready",
                                                             "message": "The service is stopping."}})  # fmt: skip
            self.server.should_exit = True

    def on_message(self, msg: dict[str, Any]) -> None:
        op, reload_id = msg.get("op"), str(msg.get("id"))
        if op == "prepare":
            self.loop.create_task(self._prepare(reload_id, msg["name"], msg["version"]))
        elif op == "commit":
            self.loop.create_task(self._commit(reload_id))
        elif op == "abort":
            self.reloader.abort(reload_id)
        elif op == "reloaded" and reload_id in self.waiting:
            self.waiting.pop(reload_id).set_result(msg)

    async def _prepare(self, reload_id: str, name: str, version: str) -> None:
        try:
            await self.reloader.prepare(reload_id, name, version)
        except ServeError as exc:
            error = {"type": exc.type, "message": exc.message, "detail": exc.detail}
            self.send(channel.message("prepared", id=reload_id, ok=False, error=error))
        except Exception as exc:  # a bug: the reload fails as a whole, the log says why
            log.exception("preparing %s v%s failed", name, version)
            error = {"type": "artifact_invalid", "message": f"Model '{name}' version {version} could not be loaded: "
                     f"{type(exc).__name__}.", "detail": {"model": name, "version": version}}  # fmt: skip
            self.send(channel.message("prepared", id=reload_id, ok=False, error=error))
        else:
            self.send(channel.message("prepared", id=reload_id, ok=True))

    async def _commit(self, reload_id: str) -> None:
        await self.reloader.commit(reload_id)
        self.send(channel.message("committed", id=reload_id))

    async def reload_everywhere(self, name: str, version: str) -> None:
        """Ask the supervisor to reload `name` at `version` in every worker; raise the error that stopped it."""
        reload_id = uuid.uuid4().hex
        future = self.loop.create_future()
        self.waiting[reload_id] = future
        self.send(channel.message("reload", id=reload_id, name=name, version=version))
        answer = await future
        if not answer.get("ok"):
            error = answer.get("error") or {}
            cls = ERROR_CLASSES.get(str(error.get("type")), ModelNotReady)
            raise cls(str(error.get("message") or "The reload failed."), error.get("detail"))


class WorkerServer(uvicorn.Server):
    """uvicorn's Server with connections from the supervisor instead of a listening socket."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, app: FastAPI) -> None:
        super().__init__(config)
        self.sock, self.app = sock, app
        self.link: Link | None = None

    def create_protocol(self) -> asyncio.Protocol:
        return Protocol(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )

    def adopt(self, fd: int) -> None:
        connection = socket.socket(fileno=fd)
        connection.setblocking(False)
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(self.create_protocol, connection))
        task.add_done_callback(lambda done: self._adopted(done, connection))

    def _adopted(self, task: asyncio.Task, connection: socket.socket) -> None:
        if task.cancelled() or task.exception() is not None:  # never reached the protocol: nobody else counts it
            connection.close()
            if self.link is not None:
                self.link.closed()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        self.servers = []
        self.link = Link(self.sock, self, self.app.state.reloader)
        Protocol.on_close = self.link.closed
        self.link.start()
        self.started = True
        self.link.send(channel.message("up"))
        asyncio.get_running_loop().create_task(self._report_ready())

    async def _report_ready(self) -> None:
        await asyncio.to_thread(self.app.state.registry.loaded.wait)
        assert self.link is not None
        self.link.send(channel.message("ready"))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.link is not None:
            self.link.stop()
        await super().shutdown(sockets)


def main(fd: int) -> None:
    raise_file_limit()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    settings = Settings()
    app = create_app(settings)
    worker = os.environ.get("DEEPSERVE_WORKER_INDEX", "0")
    requests = Counter(
        "deepserve_worker_requests", "Responses sent by each worker process", ["worker"], registry=CollectorRegistry()
    ).labels(worker)
    Protocol.header_timeout = settings.header_timeout_seconds
    Protocol.on_response = requests.inc
    config = uvicorn.Config(
        app,
        http=Protocol,  # type: ignore[arg-type]
        lifespan="on",
        access_log=False,
        **UVICORN_PROXY_OPTIONS,  # the app reads X-Forwarded-For itself (app/http/client_address.py)
        timeout_keep_alive=int(settings.keep_alive_seconds),
        log_level=settings.log_level.lower(),
    )
    WorkerServer(config, sock, app).run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
