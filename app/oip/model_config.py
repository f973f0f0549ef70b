"""A model's configuration as Triton answers `GET /v2/models/{name}/config` (its ModelConfig, in JSON), built from
the protocol metadata. Tools written for Triton read it before anything else: perf_analyzer takes
`max_batch_size` from it and refuses a config input that the metadata does not list, so the config lists exactly
the metadata's inputs.

`max_batch_size` is 0: in Triton's terms no model here has a batch dimension of its own, the row count (`image`
[n], `text` [n]) is part of each tensor's shape, as the metadata says. Triton would otherwise read [n] as n rows
of nothing (dims []), which it and perf_analyzer refuse; with 0 a client sends the metadata's shapes as they are
(perf_analyzer: `--shape image:1` or a "shape" in its input data)."""

from __future__ import annotations

from app.oip.schemas import ModelConfig, ModelMetadata, TensorConfig, TensorMetadata

# Triton's spelling of the protocol's datatypes (model_config.proto's DataType).
TRITON_TYPES = {
    "BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64", "BYTES": "TYPE_STRING",
}  # fmt: skip
BACKEND = "onnxruntime"


def tensor_config(tensor: TensorMetadata) -> TensorConfig:
    return TensorConfig(name=tensor.name, data_type=TRITON_TYPES[tensor.datatype], dims=tensor.shape)


def triton_config(metadata: ModelMetadata) -> ModelConfig:
    strings = {key: value for key, value in (metadata.parameters or {}).items() if isinstance(value, str)}
    return ModelConfig(
        name=metadata.name,
        platform=metadata.platform,
        backend=BACKEND,
        version_policy={"specific": {"versions": metadata.versions}},
        max_batch_size=0,
        input=[tensor_config(t) for t in metadata.inputs],
        output=[tensor_config(t) for t in metadata.outputs],
        parameters={key: {"string_value": value} for key, value in strings.items()},
    )
