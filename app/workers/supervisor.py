"""The supervisor of `deepserve serve`: owns the listening socket, hands every connection to a worker, keeps the
workers running, and makes a reload happen in all of them or in none.

Why not uvicorn's `--workers`: there every worker accepts on the shared socket, and the kernel hands a burst of
connections to whichever process wakes first (7 of 8 on one worker was seen, with wrk and with a Python client), so
one core served while the other idled. Here only the supervisor accepts, and each connection goes to the worker
with the fewest open connections (the supervisor counts them: +1 when it hands one over, -1 when the worker says
it closed), the way Node's cluster module does it. A connection is handed over once; its requests then go straight
to its worker.

Ready before traffic: a worker gets connections only once its models are loaded (it says `ready`). While none is
ready (the service is starting), connections go to the workers that are up, so /health/live answers at once and
/health/ready says what is loading. A worker that dies is started again (after a growing pause if it keeps dying
young) and takes connections again once it is ready; the others keep serving meanwhile. A worker that dies before
the service was ever up (a bad setting, a keys file that cannot be read) stops the service with its error.

Connection cap: each worker holds at most its share of DEEPSERVE_MAX_CONNECTIONS (by default what its open-files
limit leaves room for). When every worker is full the supervisor stops accepting: new connections wait in the
kernel's queue until one closes, instead of a worker failing with "too many open files".

Reloads: a worker asked to reload sends `reload`; every ready worker loads and warms the version beside the one it
serves (`prepare`); when all have, all swap (`commit`), otherwise all drop it (`abort`) and the reload fails as a
whole (the first error, or 503 when a worker died or did not answer within DEEPSERVE_RELOAD_TIMEOUT_SECONDS).
Reloads take turns, and wait for a worker that is starting (up to that timeout). A worker started later loads the
versions the committed reloads chose (DEEPSERVE_SERVED_VERSIONS).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from app.workers import channel

log = logging.getLogger("deepserve.supervisor")

STARTING, UP, READY = "starting", "up", "ready"
RESERVED_FILES = 256  # a worker's open files besides connections: models, threads, logs, metrics, SQLite
YOUNG_SECONDS = 10.0  # a worker that dies younger than this is started again only after a pause
MAX_PAUSE_SECONDS = 30.0
ACCEPTS_PER_WAKE = 64


@dataclass
class Worker:
    index: int
    control: socket.socket
    process: subprocess.Popen
    started: float
    state: str = STARTING
    open: int = 0  # connections handed over and not yet closed

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Reload:
    """One reload in progress: who asked, what, which workers take part and what they answered."""

    id: str
    name: str
    version: str
    origin: int
    deadline: float
    waiting: set[int]
    phase: str = "prepare"  # then "commit"
    error: dict[str, Any] | None = None


@dataclass
class Supervisor:
    host: str
    port: int
    workers: int
    max_connections: int = 0  # all workers together; 0: what each worker's open-files limit leaves room for
    reload_timeout: float = 300.0
    grace_seconds: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    pool: dict[int, Worker] = field(default_factory=dict)  # index -> the live process in that slot
    restarts: dict[int, float] = field(default_factory=dict)  # index -> when to start it again
    pauses: dict[int, float] = field(default_factory=dict)  # index -> the pause before its next start
    served: dict[str, str] = field(default_factory=dict)  # model -> version, chosen by committed reloads
    reloads: deque[dict[str, Any]] = field(default_factory=deque)  # asked for, waiting for their turn
    current: Reload | None = None
    ever_up: bool = False
    turn: int = 0
    stopping: bool = False
    exit_code: int = 0

    def __post_init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.cap = self._per_worker_cap()
        self.pending: deque[socket.socket] = deque()  # accepted, not yet handed over (no worker could take it)

    def _per_worker_cap(self) -> int:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        files = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)  # workers raise their soft limit
        room = max(16, files - RESERVED_FILES)
        if self.max_connections:
            return max(1, min(room, self.max_connections // self.workers))
        return room

    # -- processes ---------------------------------------------------------------------------------------------

    def _start(self, index: int) -> None:
        mine, theirs = channel.pair()
        mine.setblocking(False)
        env = {
            **os.environ,
            **self.env,
            "DEEPSERVE_WORKER_INDEX": str(index),
            "DEEPSERVE_SERVED_VERSIONS": json.dumps(self.served),
            "DEEPSERVE_WORKER_CONNECTIONS": str(self.cap),
        }
        command = [sys.executable, "-m", "app.workers.worker", str(theirs.fileno())]
        process = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        worker = Worker(index, mine, process, time.monotonic())
        self.pool[index] = worker
        self.selector.register(mine, selectors.EVENT_READ, worker)
        log.info("worker %d started (pid %d)", index, process.pid)

    def _lost(self, worker: Worker, why: str) -> None:
        """`worker` died (or its channel closed): forget it and start another in its slot."""
        if self.pool.get(worker.index) is not worker:
            return
        del self.pool[worker.index]
        self.selector.unregister(worker.control)
        worker.control.close()
        if worker.process.poll() is None:
            worker.process.kill()
        code = worker.process.wait()
        self._leave_reload(worker.index, f"worker {worker.index} exited during the reload")
        if self.stopping:
            return
        if not self.ever_up:
            log.error("worker %d exited (%s, code %s) before the service started; stopping", worker.index, why, code)
            self.exit_code = code or 1
            self.stop()
            return
        age = time.monotonic() - worker.started
        pause = min(MAX_PAUSE_SECONDS, self.pauses.get(worker.index, 0.5) * 2) if age < YOUNG_SECONDS else 0.0
        self.pauses[worker.index] = pause or 0.5
        self.restarts[worker.index] = time.monotonic() + pause
        log.error("worker %d (pid %d) exited (%s, code %s); starting it again in %.1f s", worker.index,
                  worker.pid, why, code, pause)  # fmt: skip

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, when in list(self.restarts.items()):
            if when <= now and not self.stopping:
                del self.restarts[index]
                self._start(index)

    # -- connections -------------------------------------------------------------------------------------------

    def _roomy(self) -> list[Worker]:
        """The ready workers (the ones that are up while none is ready) with room for another connection."""
        ready = [w for w in self.pool.values() if w.state == READY]
        candidates = ready or [w for w in self.pool.values() if w.state == UP]
        return [w for w in candidates if w.open < self.cap]

    def _choose(self) -> Worker | None:
        """The roomy worker with the fewest open connections."""
        roomy = self._roomy()
        if not roomy:
            return None
        self.turn += 1  # ties go round: one connection at a time (a client without keep-alive) spreads too
        return min(roomy, key=lambda w: (w.open, (w.index - self.turn) % self.workers))

    def _hand_over(self, connection: socket.socket) -> bool:
        """Give `connection` to a worker (False: none can take it now; the caller keeps it)."""
        while (worker := self._choose()) is not None:
            try:
                socket.send_fds(worker.control, [channel.CONNECTION], [connection.fileno()])
            except BlockingIOError:
                return False  # its queue is full: try again on the next turn of the loop
            except OSError:
                self._lost(worker, "its channel broke")
                continue
            worker.open += 1
            connection.close()  # the worker has its own copy now
            return True
        return False

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            if self.pending:
                return
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. the client reset it before it was accepted
                log.warning("accept failed: %s", exc)
                return
            if not self._hand_over(connection):
                self.pending.append(connection)

    def _flush_pending(self) -> None:
        while self.pending and self._hand_over(self.pending[0]):
            self.pending.popleft()

    # -- messages from workers ---------------------------------------------------------------------------------

    def _on_worker(self, worker: Worker) -> None:
        messages, fds, closed = channel.receive(worker.control)
        for fd in fds:  # workers never send fds; do not leak one
            os.close(fd)
        for data in messages:
            if data == channel.CLOSED:
                worker.open = max(0, worker.open - 1)
            else:
                self._on_message(worker, json.loads(data))
        if closed:
            self._lost(worker, "its channel closed")

    def _on_message(self, worker: Worker, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "up":
            worker.state, self.ever_up = UP, True
        elif op == "ready":
            worker.state = READY
            self.pauses.pop(worker.index, None)
            log.info("worker %d (pid %d) ready", worker.index, worker.pid)
        elif op == "reload":
            self.reloads.append({**msg, "origin": worker.index, "at": time.monotonic()})
        elif op in ("prepared", "committed"):
            self._on_reload_answer(worker.index, msg)

    # -- reloads -----------------------------------------------------------------------------------------------

    def _send(self, index: int, op: str, **fields: Any) -> None:
        worker = self.pool.get(index)
        if worker is None:
            return
        try:
            worker.control.send(channel.message(op, **fields))
        except OSError:
            self._lost(worker, "its channel broke")

    def _start_reload(self) -> None:
        if self.current is not None or not self.reloads:
            return
        asked = self.reloads[0]
        reload_id, origin = asked["id"], asked["origin"]
        if any(w.state != READY for w in self.pool.values()) or self.restarts:  # wait for a starting worker
            if time.monotonic() - asked["at"] < self.reload_timeout:
                return
            self.reloads.popleft()
            message = (
                f"A worker did not get ready within {self.reload_timeout:g} s (DEEPSERVE_RELOAD_TIMEOUT_SECONDS); "
                "nothing changed."
            )
            error = {"status": 503, "type": "model_not_ready", "message": message}
            self._send(origin, "reloaded", id=reload_id, ok=False, error=error)
            return
        self.reloads.popleft()
        members = set(self.pool)
        deadline = time.monotonic() + self.reload_timeout
        self.current = Reload(reload_id, asked["name"], asked["version"], origin, deadline, members)
        for index in members:
            self._send(index, "prepare", id=reload_id, name=asked["name"], version=asked["version"])

    def _on_reload_answer(self, index: int, msg: dict[str, Any]) -> None:
        current = self.current
        if current is None or msg.get("id") != current.id or index not in current.waiting:
            return
        current.waiting.discard(index)
        if msg["op"] == "prepared" and not msg.get("ok"):
            current.error = current.error or msg.get("error")
        self._advance()

    def _leave_reload(self, index: int, why: str) -> None:
        current = self.current
        if current is not None and index in current.waiting:
            current.waiting.discard(index)
            if current.phase == "prepare":
                current.error = current.error or {"status": 503, "type": "model_not_ready", "message": why}
            self._advance()

    def _advance(self) -> None:
        """Move the reload on once every worker taking part has answered this phase (or on its deadline)."""
        current = self.current
        if current is None:
            return
        timed_out = time.monotonic() > current.deadline
        if current.waiting and not timed_out:
            return
        if timed_out and current.waiting and current.phase == "prepare":
            slow = ", ".join(str(i) for i in sorted(current.waiting))
            message = f"Worker {slow} did not load the model within {self.reload_timeout:g} s " \
                      "(DEEPSERVE_RELOAD_TIMEOUT_SECONDS); nothing changed."  # fmt: skip
            current.error = current.error or {"status": 503, "type": "model_not_ready", "message": message}
        members = set(self.pool)
        if current.phase == "prepare" and current.error is None:
            # Committing cannot fail: a worker started from now on (one that died meanwhile) loads this version.
            self.served[current.name] = current.version
            current.phase, current.waiting = "commit", members
            current.deadline = time.monotonic() + self.reload_timeout
            for index in members:
                self._send(index, "commit", id=current.id)
            return
        if current.phase == "prepare":  # failed: every worker drops what it prepared
            for index in members:
                self._send(index, "abort", id=current.id)
            log.error("reload of %s v%s failed as a whole: %s", current.name, current.version, current.error)
            self._send(current.origin, "reloaded", id=current.id, ok=False, error=current.error)
        else:
            log.info("reload of %s v%s done in every worker", current.name, current.version)
            self._send(current.origin, "reloaded", id=current.id, ok=True)
        self.current = None
        self._start_reload()

    # -- the loop ----------------------------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        listener = socket.create_server((self.host, self.port), backlog=2048, family=_family(self.host))
        listener.setblocking(False)
        log.info("DeepServe on http://%s:%d: %d workers, up to %d connections each", self.host, self.port,
                 self.workers, self.cap)  # fmt: skip
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        signal.set_wakeup_fd(wake_write.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        self.selector.register(wake_read, selectors.EVENT_READ, "wake")
        accepting = False
        try:
            for index in range(self.workers):
                self._start(index)
            while not self.stopping:
                self._flush_pending()
                want = not self.pending and bool(self._roomy())
                if want != accepting:
                    if want:
                        self.selector.register(listener, selectors.EVENT_READ, "listener")
                    else:
                        self.selector.unregister(listener)
                    accepting = want
                timeout = 0.01 if self.pending else 0.5
                for key, _ in self.selector.select(timeout):
                    if key.data == "listener":
                        self._accept(listener)
                    elif key.data == "wake":
                        _drain(wake_read)
                    elif isinstance(key.data, Worker):
                        self._on_worker(key.data)
                for worker in list(self.pool.values()):
                    if worker.process.poll() is not None:
                        self._on_worker(worker)  # its last messages first
                        self._lost(worker, "it exited")
                self._restart_due()
                self._start_reload()
                self._advance()
        finally:
            listener.close()
            for connection in self.pending:
                connection.close()
            self._shut_down()
            signal.set_wakeup_fd(-1)
        return self.exit_code

    def _shut_down(self) -> None:
        """SIGTERM to every worker (each finishes the requests it has, as uvicorn does), SIGKILL after the grace."""
        self.stopping = True
        for worker in self.pool.values():
            if worker.process.poll() is None:
                worker.process.terminate()
        deadline = time.monotonic() + self.grace_seconds
        for worker in self.pool.values():
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.control.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass
