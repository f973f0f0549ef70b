"""Anomaly streams: append points to a named series and get their scores; list and delete streams. With API keys
on, each key has its own streams (the caller's key name, from app/http/middleware/auth.py, is the owner the store is
asked for): another key's stream answers exactly as one never created."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from app.core.registry import ModelRegistry
from app.errors import ModelNotInstalled, ModelNotReady, PayloadTooLarge
from app.families.anomaly import NEAREST_CONTEXT
from app.families.anomaly.context_runtime import NearestContextRuntime
from app.families.anomaly.detector import DEFAULT, DetectorConfig
from app.families.anomaly.schemas import StreamInfo, StreamList, StreamPointsRequest
from app.families.anomaly.stream_runtime import StreamAppend, StreamResponse, StreamRuntime, described
from app.http.api.deps import JSON_BODY, OwnerDep, ServingDep, StreamsDep
from app.http.api.openapi import error_responses

router = APIRouter(prefix="/anomaly/streams", tags=["anomaly streams"])

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
SeriesId = Annotated[str, Path(pattern=ID_PATTERN, description="Letters, digits, _ . : -")]
PAGE, MAX_PAGE = 100, 1000  # streams per GET /anomaly/streams: by default, at most
STORAGE_ERRORS = ("storage_unavailable",)
MODEL = NEAREST_CONTEXT.name  # the model whose settings score the streams
MODEL_ERRORS = ("model_not_ready", "model_not_installed")


def detector(registry: ModelRegistry) -> NearestContextRuntime:
    return registry.runtime(MODEL, NearestContextRuntime)


@router.post(
    "/{series_id}/points",
    response_model=StreamResponse,
    responses=error_responses(
        "malformed_body",
        "unsupported_media_type",
        "invalid_input",
        "overloaded",
        "too_many_streams",
        *MODEL_ERRORS,
        *STORAGE_ERRORS,
    ),
    dependencies=JSON_BODY,
)
async def append_points(
    series_id: SeriesId, body: StreamPointsRequest, store: StreamsDep, owner: OwnerDep, serving: ServingDep
) -> BaseModel:
    """Append points (numbers, or rows of several channels) to a stream, created on its first points, which fix
    its channels; score just those points."""
    most, width = serving.settings.max_stream_points, body.width()
    points = len(body.values) * (width or 1)  # values: a row of k channels is k of them
    if points > most:
        of = f" ({len(body.values)} rows of {width} channels)" if width is not None else ""
        raise PayloadTooLarge(
            f"{points} points{of} in one request; at most {most} (DEEPSERVE_MAX_STREAM_POINTS): send them in parts.",
            {"max_points": most, "points": points},
        )
    runtime = StreamRuntime(detector(serving.registry))
    return await serving.serve(runtime, StreamAppend(store, owner, series_id, body))


def served_config(registry: ModelRegistry) -> DetectorConfig:
    """The served detector's settings (the code's defaults while it is not loaded: listing needs no model)."""
    try:
        return detector(registry).config
    except (ModelNotInstalled, ModelNotReady):
        return DEFAULT


@router.get("", response_model=StreamList, responses=error_responses("invalid_input", *STORAGE_ERRORS))
async def list_streams(
    store: StreamsDep,
    owner: OwnerDep,
    serving: ServingDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Streams in this page.")] = PAGE,
    after: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="The `next` of the previous page: its last stream id.")
    ] = None,
) -> StreamList:
    """Your streams in id order, a page at a time, with their point counts and status; `next` continues."""
    page, cursor = await serving.offload(store.list, owner, limit, after)
    return StreamList(streams=[described(i, served_config(serving.registry)) for i in page], next=cursor)


@router.get(
    "/{series_id}",
    response_model=StreamInfo,
    responses=error_responses("invalid_input", "stream_not_found", *STORAGE_ERRORS),
)
async def get_stream(series_id: SeriesId, store: StreamsDep, owner: OwnerDep, serving: ServingDep) -> StreamInfo:
    """One stream's point count and status."""
    return described(await serving.offload(store.get, owner, series_id), served_config(serving.registry))


@router.delete(
    "/{series_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses("invalid_input", "stream_not_found", *STORAGE_ERRORS),
)
async def delete_stream(series_id: SeriesId, store: StreamsDep, owner: OwnerDep, serving: ServingDep) -> Response:
    """Forget a stream and its state."""
    await serving.offload(store.delete, owner, series_id)
    return Response(status_code=204)
