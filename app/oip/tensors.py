"""Tensors in and out of the protocol: JSON `data` (flat or nested, row-major; BYTES as UTF-8 strings, or base64
strings marked `"content_type": "base64"` as MLServer does) and the binary-data extension (Triton's: the JSON
header is the first `Inference-Header-Content-Length` bytes of the body, each binary tensor follows in input
order, `parameters.binary_data_size` its length; BYTES elements are each a 4-byte little-endian length and the
bytes). Every malformed tensor is a 422 `invalid_input` that names it."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidInput, MalformedBody, echo
from app.oip.schemas import InferenceRequest, RequestInput, ResponseOutput

DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
        "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    }.items()
}  # fmt: skip
MAX_DIMS = 8


@dataclass(frozen=True)
class Tensor:
    """One named tensor: `data` is an ndarray of `shape`, or for BYTES a flat list of its elements."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any

    @classmethod
    def of(cls, name: str, array: np.ndarray, datatype: str) -> Tensor:
        return cls(name, datatype, tuple(array.shape), np.ascontiguousarray(array, dtype=DTYPES[datatype]))

    @classmethod
    def of_bytes(cls, name: str, items: list[bytes]) -> Tensor:
        return cls(name, "BYTES", (len(items),), items)


def split_body(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The request's JSON header, parsed, and the binary data after it."""
    size = len(body)
    if header_length is not None:
        # ASCII digits only: str.isdigit() is also true for "²", which int() refuses (a 500 before)
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise MalformedBody(f"Inference-Header-Content-Length must be a byte count within the body ({len(body)}).")
        size = int(header_length)
    try:
        header = json.loads(body[:size])
    except (ValueError, RecursionError) as exc:
        raise MalformedBody("The request body is not valid JSON (or not UTF-8, or nested too deep).") from exc
    try:
        return InferenceRequest.model_validate(header), body[size:]
    except ValueError as exc:
        raise InvalidInput(f"The inference request is invalid: {summary(exc)}") from exc


def summary(exc: Exception) -> str:
    """A pydantic ValidationError's first problem in one line (field path and message), echoing no long input."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return "invalid value"
    first = errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return echo(f"{where}: {first['msg']}", 200)


def read_inputs(request: InferenceRequest, binary: bytes) -> dict[str, Tensor]:
    """Every input as a Tensor, by name; the binary data must be used exactly."""
    tensors: dict[str, Tensor] = {}
    offset = 0
    for spec in request.inputs:
        if spec.name in tensors:
            raise InvalidInput(f"Input '{echo(spec.name)}' is sent twice.", {"input": spec.name})
        elements = _elements(spec)
        size = (spec.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise InvalidInput(f"Input '{echo(spec.name)}': binary_data_size is not within the binary data.")
            tensors[spec.name] = _from_binary(spec, binary[offset : offset + size], elements)
            offset += size
        else:
            tensors[spec.name] = _from_json(spec, elements)
    if offset != len(binary):
        raise InvalidInput(f"The body has {len(binary) - offset} bytes of binary data that no input claims.")
    return tensors


def _elements(spec: RequestInput) -> int:
    if len(spec.shape) > MAX_DIMS or any(d < 0 for d in spec.shape):
        raise InvalidInput(f"Input '{echo(spec.name)}': shape {spec.shape} is not a tensor shape.")
    return math.prod(spec.shape)


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInput(f"Input '{echo(name)}': data must be a list (flat or nested, row-major).")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _from_json(spec: RequestInput, elements: int) -> Tensor:
    flat = _flatten(spec.data, spec.name)
    if len(flat) != elements:
        raise InvalidInput(
            f"Input '{echo(spec.name)}' has {len(flat)} elements; its shape {spec.shape} needs {elements}.",
            {"input": spec.name, "elements": len(flat), "shape": spec.shape},
        )
    if spec.datatype == "BYTES":
        base64_data = (spec.parameters or {}).get("content_type") == "base64"
        return Tensor(spec.name, "BYTES", tuple(spec.shape), [_bytes(item, base64_data, spec.name) for item in flat])
    kind = DTYPES[spec.datatype].kind  # b, i, u or f
    wanted = {"b": (bool,), "i": (int,), "u": (int,)}.get(kind, (int, float))
    if not all(isinstance(v, wanted) and (kind == "b" or not isinstance(v, bool)) for v in flat):
        what = {"b": "true or false", "f": "a number"}.get(kind, "an integer")
        raise InvalidInput(f"Input '{echo(spec.name)}': every element of a {spec.datatype} tensor must be {what}.")
    try:
        array = np.array(flat, dtype=DTYPES[spec.datatype])
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"Input '{echo(spec.name)}': an element does not fit {spec.datatype}.") from exc
    return Tensor(spec.name, spec.datatype, tuple(spec.shape), array.reshape(spec.shape))


def _bytes(item: Any, base64_data: bool, name: str) -> bytes:
    if not isinstance(item, str):
        raise InvalidInput(f"Input '{echo(name)}': BYTES elements in JSON are strings.")
    if not base64_data:
        return item.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"Input '{echo(name)}': an element marked base64 is not valid base64.") from exc


def _from_binary(spec: RequestInput, raw: bytes, elements: int) -> Tensor:
    if spec.datatype != "BYTES":
        dtype = DTYPES[spec.datatype]
        if len(raw) != elements * dtype.itemsize:
            raise InvalidInput(
                f"Input '{echo(spec.name)}' has {len(raw)} bytes; shape {spec.shape} of {spec.datatype} needs "
                f"{elements * dtype.itemsize}."
            )
        return Tensor(spec.name, spec.datatype, tuple(spec.shape), np.frombuffer(raw, dtype).reshape(spec.shape))
    items, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise InvalidInput(f"Input '{echo(spec.name)}': a BYTES element's length prefix is cut off.")
        (length,) = struct.unpack_from("<I", raw, at)
        if at + 4 + length > len(raw):
            raise InvalidInput(f"Input '{echo(spec.name)}': a BYTES element is longer than the data left.")
        items.append(raw[at + 4 : at + 4 + length])
        at += 4 + length
    if len(items) != elements:
        raise InvalidInput(f"Input '{echo(spec.name)}' has {len(items)} elements; its shape needs {elements}.")
    return Tensor(spec.name, "BYTES", tuple(spec.shape), items)


def write_outputs(tensors: list[Tensor], binary: set[str]) -> tuple[list[ResponseOutput], list[bytes]]:
    """Each tensor as a response output: its data in JSON, or (for the names in `binary`) after it."""
    outputs, parts = [], []
    for tensor in tensors:
        shape = list(tensor.shape)
        if tensor.name in binary:
            raw = (
                b"".join(struct.pack("<I", len(item)) + item for item in tensor.data)
                if tensor.datatype == "BYTES"
                else tensor.data.tobytes()
            )
            parts.append(raw)
            params = {"binary_data_size": len(raw)}
            outputs.append(ResponseOutput(name=tensor.name, shape=shape, datatype=tensor.datatype, parameters=params))
            continue
        if tensor.datatype == "BYTES":
            data = [item.decode("utf-8", "replace") for item in tensor.data]
        else:
            data = tensor.data.reshape(-1).tolist()
        outputs.append(ResponseOutput(name=tensor.name, shape=shape, datatype=tensor.datatype, data=data))
    return outputs, parts
