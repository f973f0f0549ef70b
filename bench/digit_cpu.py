"""Where the CPU of one POST /predict/digit goes, in one process: each stage alone, then the whole ASGI app.

    python -m bench.digit_cpu [--repeat 3000] [--digits DIR] [--models models]

The bodies are the 30 peers digits (../shared/data/mnist/sample_png_test) as the multipart uploads
bench/peers/run.py sends. Each stage runs --repeat times over them in this thread and prints CPU microseconds per
request (thread CPU time, so other processes on a busy machine do not count): the multipart read, the image
header, decoding, the MNIST-style preprocessing, the model call, encoding, and the response's serialisation
(FastAPI's response_model pass to JSON bytes). "whole app" sends the same requests one at a time straight to the
ASGI app (middleware, routing, dependencies, the worker-pool hop, logging, metrics: everything but uvicorn's HTTP
parsing) and counts the whole process's CPU per request. "other" is what the stages alone do not explain: not
only the framework, since a stage called in a loop runs with warm caches, and the same stages interleaved with the
rest of a request took about twice as long on this 2-core VM. Compare two commits by running this in each checkout
in turn, alternately; every answer is checked against the digit's label.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from app.config import Settings
from app.families.digit.preprocess import preprocess_digit
from app.families.digit.runtime import DigitPrediction, DigitRuntime
from app.families.image_decode import decode_image
from app.families.images import ImageUpload
from app.http.api import predict
from app.http.main import create_app
from app.http.multipart import single_file
from bench.peers.run import DIGITS, REPO, multipart


def per_call_us(fn: Callable[[Any], Any], inputs: list[Any], repeat: int, rounds: int) -> float:
    """Thread CPU microseconds per call of fn, cycling through `inputs` (after one warm-up pass): the least of
    `rounds` rounds of `repeat` calls (other work on a busy machine only ever adds)."""
    for x in inputs:
        fn(x)
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for i in range(repeat):
            fn(inputs[i % len(inputs)])
        best = min(best, 1e6 * (time.thread_time() - started) / repeat)
    return best


def serialiser() -> Callable[[DigitPrediction], bytes]:
    """What FastAPI does with the route's return value: validate it as the response_model, dump it to JSON."""
    route = next(r for r in predict.router.routes if isinstance(r, APIRoute) and r.path == "/predict/digit")
    field = route.response_field
    assert field is not None

    def serialise(body: DigitPrediction) -> bytes:
        value, errors = field.validate(body, {}, loc=("response",))
        assert not errors
        return field.serialize_json(value, by_alias=True)

    return serialise


async def whole_app(app, bodies: list[tuple[int, str, bytes]], repeat: int, rounds: int) -> float:
    """Process CPU microseconds per request through the ASGI app, requests sent one after another (the least of
    `rounds` rounds of `repeat` requests)."""

    async def one(label: int, content_type: str, body: bytes) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict/digit",
            "raw_path": b"/predict/digit",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        chunks: list[bytes] = []
        status = 0

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        answer = json.loads(b"".join(chunks))
        if status != 200 or answer["digit"] != label:
            raise AssertionError(f"status {status}, {answer} for a {label}")

    for body in bodies:
        await one(*body)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for i in range(repeat):
            await one(*bodies[i % len(bodies)])
        best = min(best, 1e6 * (time.process_time() - started) / repeat)
    return best


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=2000, help="calls per stage and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds per stage; the least is printed")
    p.add_argument("--digits", type=Path, default=DIGITS)
    p.add_argument("--models", type=Path, default=REPO / "models")
    args = p.parse_args()
    files = sorted(args.digits.glob("*.png"))
    bodies = [(int(f.name.split("_")[0]), *multipart(f.read_bytes(), f.name)) for f in files]
    if not bodies:
        raise SystemExit(f"no <label>_<i>.png digits in {args.digits}")

    settings = Settings(models_dir=args.models, models=["digit"])
    app = create_app(settings)
    logging.getLogger("deepserve").handlers[0].stream = open(os.devnull, "w")  # noqa: SIM115 (formatted, not shown)
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app):
        registry = app.state.registry
        while not registry.loaded.is_set():
            await asyncio.sleep(0.05)
        runtime = registry.runtime("digit", DigitRuntime)
        max_pixels = settings.max_image_pixels
        parts = [single_file(content_type, body) for _, content_type, body in bodies]
        datas = [part[1] for part in parts if part is not None]
        uploads = [ImageUpload.read(data, max_pixels) for data in datas]
        images = [decode_image(data, max_pixels) for data in datas]
        inputs = [preprocess_digit(image) for image in images]
        outputs = [runtime.predict([x]) for x in inputs]
        encoded = [runtime.encode(u, o) for u, o in zip(uploads, outputs, strict=True)]
        wrong = [label for (label, _, _), [out] in zip(bodies, outputs, strict=True) if out.digit != label]
        assert not wrong, f"misread digits: {wrong}"

        n, r = args.repeat, args.rounds
        pairs = list(zip(uploads, outputs, strict=True))
        header = per_call_us(lambda d: ImageUpload.read(d, max_pixels), datas, n, r)
        decoded = per_call_us(lambda d: runtime.decode(ImageUpload.read(d, max_pixels)), datas, n, r)
        preprocess = per_call_us(preprocess_digit, images, n, r)
        stages = {
            "multipart read": per_call_us(lambda b: single_file(b[1], b[2]), bodies, n, r),
            "image header": header,
            "decode + preprocess (runtime.decode, less the header)": decoded - header,
            "model call": per_call_us(lambda x: runtime.predict([x]), inputs, n, r),
            "encode": per_call_us(lambda pair: runtime.encode(*pair), pairs, n, r),
            "serialise": per_call_us(serialiser(), encoded, n, r),
        }
        total = await whole_app(app, bodies, n, r)
    print(f"CPU per POST /predict/digit, {len(bodies)} peers digits, least of {r} rounds of {n} calls, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| stage | CPU us/request |\n|---|---|")
    for name, us in stages.items():
        print(f"| {name} | {us:.1f} |")
    print(f"| (preprocess alone, the same 30 decoded images in a loop) | ({preprocess:.1f}) |")
    other = total - sum(stages.values())
    print(f"| other (middleware, routing, pool hop, logging, metrics; colder caches) | {other:.1f} |")
    print(f"| whole app (in-process ASGI, sequential) | {total:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
