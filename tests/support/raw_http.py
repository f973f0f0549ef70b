"""Raw sockets against a real uvicorn: an upload that stalls mid-body, and reading the answer by hand."""

from __future__ import annotations

import socket


def upload(port: int, path: str, content_type: str, length: int, sent: bytes) -> socket.socket:
    """A POST whose headers announce `length` bytes of body, of which `sent` goes out now."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    sock.sendall(head.encode() + sent)
    return sock


def stalled_upload(
    port: int, path: str, content_type: str = "image/png", first: bytes = b"\x89PNG\r\n\x1a\n"
) -> socket.socket:
    """Headers announcing 1,000 bytes, then the `first` 8 of them, then nothing."""
    return upload(port, path, content_type, 1000, first)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers, body, and whether the server then closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    try:
        closed = sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        closed = True  # a reset also ends the connection; a timeout would mean it is still open
    return int(lines[0].split()[1]), headers, body, closed
