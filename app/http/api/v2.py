"""The Open Inference Protocol's REST routes (KServe V2: what Triton, MLServer and KServe speak), beside the task
endpoints and through the same runtimes, admission and limits (app/oip). Errors here are the protocol's
`{"error": message}` with the task endpoints' statuses (app/http/api/errors.py picks the form by path)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.core.registry import ModelRegistry
from app.core.serving import Serving
from app.errors import InvalidInput, UnsupportedMediaType, echo
from app.families.runtime import Runtime
from app.http.api.deps import ServingDep
from app.http.api.errors import PROTOCOL_PREFIX
from app.http.api.openapi import error_responses
from app.oip.adapters import adapter_for
from app.oip.model_config import triton_config
from app.oip.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelConfig,
    ModelMetadata,
    ModelReady,
    ProtocolError,
    RequestParameters,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from app.oip.tensors import read_inputs, split_body, write_outputs

router = APIRouter(prefix=PROTOCOL_PREFIX, tags=["open inference protocol (v2)"])

PLATFORM = "onnxruntime_onnx"  # every served artifact is an ONNX model run by ONNX Runtime
BODY_TYPES = {"", "application/json", "application/octet-stream"}  # tritonclient sends binary bodies untyped
HEADER_LENGTH = "Inference-Header-Content-Length"


def inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its $defs inlined (an OpenAPI document resolves $ref from its own root)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        return [resolve(item) for item in node] if isinstance(node, list) else node

    return resolve(schema)


def protocol_errors(*types: str, guarded: bool = True) -> dict[int | str, dict[str, Any]]:
    """`error_responses`, with the protocol's error body."""
    responses = error_responses(*types, guarded=guarded)
    for response in responses.values():
        response["content"] = {"application/json": {"schema": ProtocolError.model_json_schema()}}
    return responses


MODEL_ERRORS = protocol_errors("model_not_found", "model_not_ready", "model_not_installed")
INFER_ERRORS = protocol_errors(
    "malformed_body",
    "invalid_image",
    "image_too_large",
    "unsupported_media_type",
    "invalid_input",
    "out_of_distribution",
    "overloaded",
    "model_not_found",
    "model_not_ready",
    "model_not_installed",
)
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline(InferenceRequest.model_json_schema())},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": f"Binary-data extension: the JSON request in the first `{HEADER_LENGTH}` bytes, "
                "then each binary input's bytes.",
            },
        },
    }
}
METADATA: dict[str, Any] = {"responses": MODEL_ERRORS, "response_model_exclude_none": True}
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ServerReady, "description": "Not ready: a model is loading or failed."}
}


@router.get("", response_model=ServerMetadata, responses=protocol_errors())
async def server_metadata(request: Request) -> ServerMetadata:
    """Server metadata: name, version, protocol extensions."""
    return ServerMetadata(name="deepserve", version=request.app.version, extensions=["binary_tensor_data"])


@router.get("/health/live", response_model=ServerLive, responses=protocol_errors(guarded=False))
async def live() -> ServerLive:
    """The process is up (models may still be loading)."""
    return ServerLive(live=True)


@router.get("/health/ready", response_model=ServerReady, responses={**protocol_errors(guarded=False), **NOT_READY})
async def ready(serving: ServingDep) -> JSONResponse:
    """200 once every configured model is loaded and warmed; 503 before that or if one failed."""
    ready = serving.registry.ready
    return JSONResponse(ServerReady(ready=ready).model_dump(), status_code=200 if ready else 503)


async def served(registry: ModelRegistry, name: str, version: str | None) -> Runtime:
    """The model's served runtime, or its `version` (loaded on first use, like the task endpoints' X-Model-Version;
    404 for a version not in the models folder)."""
    return await registry.pin(registry.runtime(name, Runtime), version)


@router.get("/models/{name}", response_model=ModelMetadata, **METADATA)
async def model_metadata(name: str, serving: ServingDep) -> ModelMetadata:
    """The served version's metadata: input and output tensors (names, datatypes, shapes; -1 is any size)."""
    return metadata(await served(serving.registry, name, None))


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    responses=protocol_errors("model_not_found", "model_not_ready", "model_not_installed", "overloaded"),
    response_model_exclude_none=True,
)
async def version_metadata(name: str, version: str, serving: ServingDep) -> ModelMetadata:
    """One version's metadata (loaded on first use; 404 for a version not in the models folder; 429 when the model
    loaded another pinned version too recently, DEEPSERVE_PINNED_LOAD_INTERVAL_SECONDS)."""
    return metadata(await served(serving.registry, name, version))


def metadata(runtime: Runtime) -> ModelMetadata:
    """`inputs` are what a client sends by default (perf_analyzer sends every one listed); inputs accepted in their
    place are in `parameters.other_inputs`."""
    adapter = adapter_for(runtime)
    parameters: dict[str, Any] = {"task": runtime.entry.task}
    others = adapter.other_inputs(runtime)
    if others:
        parameters["other_inputs"] = [t.model_dump(exclude_none=True) for t in others]
    return ModelMetadata(
        name=runtime.entry.name,
        versions=[runtime.entry.version],
        platform=PLATFORM,
        inputs=adapter.inputs(runtime),
        outputs=adapter.outputs(runtime),
        parameters=parameters,
    )


@router.get("/models/{name}/config", response_model=ModelConfig, **METADATA)
async def model_config(name: str, serving: ServingDep) -> ModelConfig:
    """The served version's configuration as Triton spells it (name, platform, max_batch_size, input and output
    with data_type and dims), which Triton's tools (perf_analyzer) read before anything else."""
    return triton_config(metadata(await served(serving.registry, name, None)))


@router.get("/models/{name}/versions/{version}/config", response_model=ModelConfig, **METADATA)
async def version_config(name: str, version: str, serving: ServingDep) -> ModelConfig:
    """One version's configuration as Triton spells it (loaded on first use; 404 for a version not in the models
    folder)."""
    return triton_config(metadata(await served(serving.registry, name, version)))


@router.get("/models/{name}/ready", response_model=ModelReady, responses=MODEL_ERRORS)
def model_ready(name: str, serving: ServingDep) -> ModelReady:
    """200 when the model is loaded and warm; else the error its task endpoint answers (404, 503)."""
    return ModelReady(name=serving.registry.runtime(name, Runtime).entry.name, ready=True)


@router.get("/models/{name}/versions/{version}/ready", response_model=ModelReady, responses=MODEL_ERRORS)
def version_ready(name: str, version: str, serving: ServingDep) -> ModelReady:
    """200 when this version is loaded and warm (served, or pinned by an earlier request); 404 otherwise (a version
    other than the served one loads on its first inference or metadata request)."""
    registry = serving.registry
    if (name, version) in registry.pinned:
        return ModelReady(name=name, ready=True)
    return ModelReady(name=registry.runtime(name, Runtime, version).entry.name, ready=True)


@router.post("/models/{name}/infer", response_model=InferenceResponse, responses=INFER_ERRORS, openapi_extra=INFER_BODY)
async def infer(name: str, request: Request, serving: ServingDep) -> Response:
    """Run the served version on the request's tensors (JSON, or the binary-data extension)."""
    return await run(name, None, request, serving)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=INFER_ERRORS,
    openapi_extra=INFER_BODY,
)
async def infer_version(name: str, version: str, request: Request, serving: ServingDep) -> Response:
    """Run this version (loaded on first use; 404 for a version not in the models folder)."""
    return await run(name, version, request, serving)


async def run(name: str, version: str | None, request: Request, serving: Serving) -> Response:
    runtime = await served(serving.registry, name, version)
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media not in BODY_TYPES:
        raise UnsupportedMediaType(f"Content-Type '{echo(media)}' is not accepted: send application/json.")
    body, binary = split_body(await request.body(), request.headers.get(HEADER_LENGTH))
    adapter = adapter_for(runtime)
    parameters = body.parameters or RequestParameters()
    tensors = await adapter.infer(runtime, read_inputs(body, binary), serving, parameters.reject_ood)
    wanted = {o.name: o for o in body.outputs} if body.outputs else {t.name: None for t in tensors}
    unknown = sorted(set(wanted) - {t.name for t in tensors})
    if unknown:
        names = ", ".join(t.name for t in tensors)
        raise InvalidInput(f"Unknown output '{echo(unknown[0])}'; this model answers {names}.", {"outputs": names})
    all_binary = bool(parameters.binary_data_output)
    binary_names = {name for name, o in wanted.items() if (o and o.parameters or {}).get("binary_data", all_binary)}
    outputs, parts = write_outputs([t for t in tensors if t.name in wanted], binary_names)
    answer = InferenceResponse(
        model_name=runtime.entry.name, model_version=runtime.entry.version, id=body.id, outputs=outputs
    )
    header = answer.model_dump_json(exclude_none=True).encode()
    if not parts:
        return Response(header, media_type="application/json")
    headers = {HEADER_LENGTH: str(len(header))}
    return Response(b"".join([header, *parts]), media_type="application/octet-stream", headers=headers)
