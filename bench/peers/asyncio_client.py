"""A Python load generator: one asyncio connection per in-flight request, all opened together before the first
request is sent, HTTP/1.1 keep-alive, and every answer checked against the digit it should name.

    python -m bench.peers.asyncio_client URL MANIFEST [--field digit] [-c 8] [-d 3]

This is the client wrk is not: what a Python service calling the model sees, one request after another on each
of its connections (no pipelining). MANIFEST is the load generators' list of bodies (bench/peers/bodies.py); the
bodies are sent in turn, each connection starting at its own. Written on asyncio streams with HTTP/1.1 framing by
hand (Content-Length or chunked), since an HTTP library would cost more CPU per request than the servers it
measures. Prints one JSON line with the keys of load.lua's done() (requests, seconds, p50_ms, p99_ms, connect,
read and write errors, status errors, timeouts, answers checked and wrong) and its own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.peers.bodies import Body, answer, read_manifest


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    checked: int = 0
    wrong: int = 0
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0  # wrk's; a write that fails here is a read error
    status_errors: int = 0
    timeouts: int = 0


def request_bytes(host: str, path: str, body: Body) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Type: {body.content_type}",
            f"Content-Length: {len(body.data)}"]  # fmt: skip
    if body.header:
        head.append(f"{body.header[0]}: {body.header[1]}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body.data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server keeps the connection open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        payload = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # no trailers sent by these servers
        payload = b"".join(parts)
    else:
        payload = await reader.read()  # the body ends with the connection
    return status, payload, headers.get("connection") != "close"


async def connection(
    address: tuple[str, int],
    opened: tuple[asyncio.StreamReader, asyncio.StreamWriter] | BaseException,
    requests: list[tuple[str, bytes]],
    start: int,
    deadline: float,
    field_name: str,
    timeout: float,
    tally: Tally,
) -> None:
    """Send requests in turn on one connection until the deadline; reconnect after an error or a close."""
    i = start
    streams = None if isinstance(opened, BaseException) else opened
    tally.connect_errors += streams is None
    while time.perf_counter() < deadline:
        if streams is None:
            try:
                streams = await asyncio.open_connection(*address)
            except OSError:
                tally.connect_errors += 1
                await asyncio.sleep(0.01)
                continue
        reader, writer = streams
        label, raw = requests[i % len(requests)]
        i += 1
        sent = time.perf_counter()
        keep = False
        try:
            writer.write(raw)
            await writer.drain()
            status, payload, keep = await asyncio.wait_for(read_response(reader), timeout)
        except TimeoutError:
            tally.timeouts += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            tally.read_errors += 1  # a refused write shows as a reset here too
        else:
            tally.latencies.append(time.perf_counter() - sent)
            tally.checked += 1
            if status != 200:
                tally.status_errors += 1
                tally.wrong += 1
            elif answer(payload, field_name) != label:
                tally.wrong += 1
        if not keep:
            writer.close()
            streams = None
    if streams is not None:
        streams[1].close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(url: str, manifest: Path, concurrency: int, seconds: float, field_name: str, timeout: float) -> dict:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    path = parts.path or "/"
    requests = [(label, request_bytes(parts.netloc, path, body)) for label, body in read_manifest(manifest)]
    connected = await asyncio.gather(
        *(asyncio.open_connection(*address) for _ in range(concurrency)), return_exceptions=True
    )
    tally = Tally()
    cpu, started = time.process_time(), time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(
        connection(address, streams, requests, i * len(requests) // concurrency, deadline, field_name, timeout, tally)
        for i, streams in enumerate(connected)
    ))  # fmt: skip
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "requests": len(tally.latencies),
        "seconds": elapsed,
        "p50_ms": 1e3 * percentile(tally.latencies, 0.50),
        "p99_ms": 1e3 * percentile(tally.latencies, 0.99),
        "connect_errors": tally.connect_errors,
        "read_errors": tally.read_errors,
        "write_errors": tally.write_errors,
        "status_errors": tally.status_errors,
        "timeouts": tally.timeouts,
        "checked": tally.checked,
        "wrong": tally.wrong,
        "client_cpu_seconds": cpu,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("manifest", type=Path)
    p.add_argument("--field", default="digit", help="the JSON field, or protocol output, that names the digit")
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("-d", "--seconds", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    result = asyncio.run(run(args.url, args.manifest, args.concurrency, args.seconds, args.field, args.timeout))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
