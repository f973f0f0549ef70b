"""The protocol's messages (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.schemas import RequestBody, UnicodeText

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"
]
Parameters = dict[str, Any]


class RequestInput(RequestBody):
    name: UnicodeText
    shape: list[int] = Field(
        fail_fast=True, description="Dimensions, row-major; their product is the number of elements."
    )
    datatype: Datatype
    parameters: Parameters | None = Field(
        None,
        description='"content_type": "base64" marks BYTES data sent as base64 strings; "binary_data_size" marks '
        "data sent after the JSON (binary-data extension).",
    )
    data: Any = Field(None, description="The elements, flat or nested, row-major; absent for binary data.")


class RequestOutput(RequestBody):
    name: UnicodeText
    parameters: Parameters | None = Field(None, description='"binary_data": true asks for it after the JSON.')


class RequestParameters(BaseModel):
    """The request-level parameters this server reads; others (Triton's `priority`, `timeout`, ...) are ignored."""

    model_config = ConfigDict(extra="allow")

    reject_ood: StrictBool = Field(
        False,
        description="true: an input the model flags as out of distribution (`in_distribution` false) makes the "
        "request a 422 out_of_distribution naming it, as `reject_ood` does on the task endpoints. Classifiers "
        "only; a model without such a check ignores it.",
    )
    binary_data_output: Any = Field(None, description="true: every output after the JSON (binary-data extension).")


class InferenceRequest(RequestBody):
    model_config = ConfigDict(extra="ignore")

    id: UnicodeText | None = Field(None, description="Echoed in the answer (a lone surrogate as U+FFFD).")
    parameters: RequestParameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, fail_fast=True)
    outputs: list[RequestOutput] | None = Field(None, fail_fast=True, description="The outputs wanted (default: all).")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(fail_fast=True, description="-1 for a dimension of any size.")
    parameters: Parameters | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: Parameters | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ProtocolError(BaseModel):
    error: str


class TensorConfig(BaseModel):
    name: str
    data_type: str = Field(description='Triton\'s spelling: "TYPE_FP32", "TYPE_STRING" (BYTES), ...')
    dims: list[int] = Field(description="The whole shape (max_batch_size is 0); -1 is any size.")


class ModelConfig(BaseModel):
    """Triton's ModelConfig, the parts a client reads."""

    name: str
    platform: str
    backend: str
    version_policy: dict[str, Any]
    max_batch_size: int = Field(description="0: no Triton batch dimension; a row count is part of the dims.")
    input: list[TensorConfig]
    output: list[TensorConfig]
    parameters: dict[str, dict[str, str]] = {}
