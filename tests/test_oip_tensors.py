"""Tensors in and out of the Open Inference Protocol (app/oip/tensors.py), checked against Triton's own client
library's encoding where it has one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from app.errors import InvalidInput, MalformedBody
from app.oip.tensors import Tensor, read_inputs, split_body, write_outputs


def request(*inputs: dict, binary: bytes = b""):
    body = json.dumps({"inputs": list(inputs)}).encode()
    return split_body(body + binary, str(len(body)) if binary else None)


def test_nested_json_data_is_read_row_major_into_its_shape() -> None:
    parsed, rest = request({"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6.5]]})
    tensor = read_inputs(parsed, rest)["x"]
    assert tensor.data.dtype == np.float32 and tensor.data.tolist() == [[1, 2, 3], [4, 5, 6.5]]


@pytest.mark.parametrize(
    ("datatype", "data"),
    [("INT64", [1.5]), ("INT64", [True]), ("BOOL", [1]), ("FP32", ["1"]), ("UINT8", [300]), ("BYTES", [7])],
)
def test_elements_of_the_wrong_kind_are_refused(datatype: str, data: list) -> None:
    parsed, rest = request({"name": "x", "shape": [1], "datatype": datatype, "data": data})
    with pytest.raises(InvalidInput):
        read_inputs(parsed, rest)


def test_binary_inputs_as_tritonclient_encodes_them() -> None:
    texts = np.array([b"caf\xc3\xa9", b"", b"\x00\xff binary"], dtype=np.object_)
    raw_texts = serialize_byte_tensor(texts).item()
    pixels = np.arange(6, dtype=np.float32).reshape(2, 3)
    parsed, rest = request(
        {"name": "t", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw_texts)}},
        {"name": "p", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": pixels.nbytes}},
        binary=raw_texts + pixels.tobytes(),
    )
    tensors = read_inputs(parsed, rest)
    assert tensors["t"].data == list(texts) and tensors["p"].data.tolist() == pixels.tolist()


@pytest.mark.parametrize("extra", [b"x", b""])
def test_binary_data_must_be_claimed_exactly(extra: bytes) -> None:
    pixels = np.zeros(4, dtype=np.float32).tobytes()
    size = len(pixels) + (0 if extra else 4)  # leftover bytes, or a size beyond the data
    parsed, rest = request(
        {"name": "p", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": size}},
        binary=pixels + extra,
    )
    with pytest.raises(InvalidInput):
        read_inputs(parsed, rest)


def test_a_header_length_beyond_the_body_is_malformed() -> None:
    with pytest.raises(MalformedBody):
        split_body(b'{"inputs": []}', "999")


def test_outputs_in_json_and_in_binary_as_tritonclient_reads_them() -> None:
    scores = Tensor.of("scores", np.array([[0.25, 0.75]]), "FP32")
    names = Tensor.of_bytes("names", [b"cat", b"dog\x00"])
    outputs, parts = write_outputs([scores, names], binary={"names"})
    assert outputs[0].model_dump(exclude_none=True) == {
        "name": "scores", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]
    }  # fmt: skip
    assert outputs[1].parameters == {"binary_data_size": len(parts[0])} and outputs[1].data is None
    assert deserialize_bytes_tensor(parts[0]).tolist() == [b"cat", b"dog\x00"]
