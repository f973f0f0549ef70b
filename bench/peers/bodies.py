"""The digit requests each server takes, built once from the test digits for every load generator.

A server's request is one of: a multipart upload in field `file` (DeepServe's /predict/digit and the peers that
copy it), the Open Inference Protocol's binary-data extension (Triton: the JSON header, then the file's bytes as
a BYTES element) or its JSON with base64 BYTES (MLServer). Every request asks for the answer as JSON with the
digit in a field or an output named `digit`, which `answer` reads from any of them.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps


@dataclass(frozen=True)
class Body:
    """One request's body, its content type and, for the binary-data extension, one more header."""

    content_type: str
    data: bytes
    header: tuple[str, str] | None = None


Encoder = Callable[[bytes, str, str], Body]  # (image file, file name, media type) -> Body


def multipart(image: bytes, name: str, media: str = "image/png") -> Body:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {media}\r\n\r\n"
    ).encode()
    return Body(f"multipart/form-data; boundary={boundary}", head + image + f"\r\n--{boundary}--\r\n".encode())


def oip_binary(image: bytes, name: str, media: str, shape: tuple[int, ...] = (1, 1)) -> Body:
    """Triton's binary-data extension: input `image` BYTES of `shape` (one element: a 4-byte little-endian length
    and the file), output `digit` asked for as JSON."""
    element = struct.pack("<I", len(image)) + image
    header = json.dumps({
        "inputs": [{"name": "image", "shape": list(shape), "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(element)}}],
        "outputs": [{"name": "digit", "parameters": {"binary_data": False}}],
    }).encode()  # fmt: skip
    return Body("application/octet-stream", header + element, ("Inference-Header-Content-Length", str(len(header))))


def oip_base64(image: bytes, name: str, media: str) -> Body:
    """The protocol's JSON: input `image` BYTES [1], base64 (MLServer's `content_type`), every output as JSON."""
    tensor = {"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"content_type": "base64"},
              "data": [base64.b64encode(image).decode()]}  # fmt: skip
    return Body("application/json", json.dumps({"inputs": [tensor]}).encode())


def answer(payload: bytes, field: str = "digit") -> str | None:
    """The answer in a JSON response: its `field`, or the first element of the output named `field`."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if field in doc:
        return str(doc[field])
    for output in doc.get("outputs") or []:
        if output.get("name") == field and output.get("data"):
            first = output["data"][0]
            while isinstance(first, list) and first:
                first = first[0]
            return str(first)
    return None


def as_photo(png: Path, size: int) -> bytes:
    """The digit as a size x size JPEG photo: dark ink on light paper, as a phone sees a page."""
    photo = ImageOps.invert(Image.open(png).convert("L")).resize((size, size), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    photo.convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def write_bodies(
    digits: Path, folder: Path, photo: int = 0, encode: Encoder = multipart
) -> tuple[Path, list[tuple[int, Body]]]:
    """One body file per test digit (its PNG, or `as_photo` at `photo` pixels) and the load generators' manifest:
    one line per body with its label, content type, file and extra header (`Name: value`, or empty), tab-separated.
    """
    bodies, lines = [], []
    for i, png in enumerate(sorted(digits.glob("*.png"))):
        label = int(png.name.split("_")[0])
        if photo:
            body = encode(as_photo(png, photo), f"{png.stem}.jpg", "image/jpeg")
        else:
            body = encode(png.read_bytes(), png.name, "image/png")
        path = folder / f"body{i}.bin"
        path.write_bytes(body.data)
        bodies.append((label, body))
        header = f"{body.header[0]}: {body.header[1]}" if body.header else ""
        lines.append(f"{label}\t{body.content_type}\t{path}\t{header}")
    if not bodies:
        sys.exit(f"no <label>_<i>.png digits in {digits}")
    manifest = folder / "bodies.txt"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, bodies


def read_manifest(manifest: Path) -> list[tuple[str, Body]]:
    """The manifest's bodies, as the load generators send them."""
    out = []
    for line in manifest.read_text().splitlines():
        label, content_type, path, header = (line.split("\t") + [""])[:4]
        name, _, value = header.partition(": ")
        out.append((label, Body(content_type, Path(path).read_bytes(), (name, value) if header else None)))
    return out
