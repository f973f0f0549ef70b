"""The messages between the supervisor and one worker: an AF_UNIX SOCK_SEQPACKET socket pair (each send is one
message; an accepted connection's file descriptor travels with its message, SCM_RIGHTS).

supervisor -> worker: CONNECTION (one byte, with the connection's fd); JSON: `prepare`, `commit`, `abort`
(a reload, app/workers/supervisor.py) and `reloaded` (the answer to the worker that asked for it).
worker -> supervisor: CLOSED (one byte: a connection it was given has closed); JSON: `up` (serving), `ready` (its
models loaded), `reload` (an admin asked this worker), `prepared` and `committed` (its part of a reload).
"""

from __future__ import annotations

import json
import socket
from typing import Any

CONNECTION = b"c"
CLOSED = b"x"
MAX_MESSAGE = 64 * 1024


def pair() -> tuple[socket.socket, socket.socket]:
    """(the supervisor's end, the worker's end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def message(op: str, **fields: Any) -> bytes:
    return json.dumps({"op": op, **fields}).encode()


def receive(sock: socket.socket) -> tuple[list[bytes], list[int], bool]:
    """Every message waiting on the non-blocking `sock`: (messages, fds that came with them, closed by the other
    end). A CONNECTION message's fd is in `fds`, in order."""
    messages: list[bytes] = []
    fds: list[int] = []
    while True:
        try:
            data, received, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
        except BlockingIOError:
            return messages, fds, False
        except (ConnectionResetError, OSError):
            return messages, fds, True
        if not data and not received:
            return messages, fds, True
        messages.append(data)
        fds.extend(received)
