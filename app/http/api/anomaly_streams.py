"""Anomaly streams: append points to a named series and get their scores; list and delete streams. With API keys
on, each key has its own streams (the caller's key name, from app/http/middleware/auth.py, is the owner the store is
asked for): another key's stream answers exactly as one never created."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.config import Settings
from app.core.registry import ModelRegistry
from app.errors import ModelNotInstalled, ModelNotReady, PayloadTooLarge
from app.families.anomaly import series, streams
from app.families.anomaly.context_runtime import NearestContextRuntime
from app.families.anomaly.detector import DEFAULT, alarm_limits
from app.families.anomaly.schemas import Sampling, StreamInfo, StreamList, StreamPointsRequest, StreamPointsResponse
from app.http.api.deps import InferenceDep, LimiterDep, RegistryDep, require_json
from app.http.api.openapi import error_responses
from app.http.middleware.auth import KEY_NAME

router = APIRouter(prefix="/anomaly/streams", tags=["anomaly streams"])

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
SeriesId = Annotated[str, Path(pattern=ID_PATTERN, description="Letters, digits, _ . : -")]
PAGE, MAX_PAGE = 100, 1000  # streams per GET /anomaly/streams: by default, at most


async def get_store(request: Request) -> streams.StreamStore:
    return request.app.state.streams


async def get_owner(request: Request) -> str:
    """The caller's API key name; with keys off, the one owner."""
    return str(request.scope.get(KEY_NAME, streams.NO_OWNER))


StoreDep = Annotated[streams.StreamStore, Depends(get_store)]
OwnerDep = Annotated[str, Depends(get_owner)]
STORAGE_ERRORS = ("storage_unavailable",)
MODEL = "nearest_context"  # the model whose settings score the streams
MODEL_ERRORS = ("model_not_ready", "model_not_installed")


def detector(registry: ModelRegistry) -> NearestContextRuntime:
    return registry.runtime(MODEL, NearestContextRuntime)


def _info(info: streams.StreamInfo, warmup: int) -> StreamInfo:
    return StreamInfo(
        series_id=info.series_id,
        points=info.points,
        status="warming_up" if info.points < warmup else "ready",
        sensitivity=info.sensitivity,
        created=datetime.fromtimestamp(info.created, UTC),
        updated=datetime.fromtimestamp(info.updated, UTC),
    )


def _append(
    store: streams.StreamStore, runtime: NearestContextRuntime, owner: str, series_id: str, body: StreamPointsRequest
) -> StreamPointsResponse:
    values = series.as_values(body.values)
    config = runtime.config
    sampling: list[Sampling] = []
    stamps = body.timestamps

    def check(at: int, last_time: float | None) -> None:
        sampling[:] = [series.check_timestamps(stamps, at, last_time)] if stamps is not None else []

    info, scored, first = store.append(owner, series_id, values, stamps, body.sensitivity, config, check)
    threshold, _ = alarm_limits(config, info.sensitivity)
    regions = series.alarm_regions(scored.alarm, scored.score, threshold)
    return StreamPointsResponse(
        **vars(series.points(scored, values)),
        stream=_info(info, config.warmup),
        first_index=first,
        threshold=threshold,
        regions=series.regions_with_times(regions, body.timestamps, at=first),
        sampling=sampling[0] if sampling else None,
        missing=series.missing_report(scored, at=first),
    )


@router.post(
    "/{series_id}/points",
    response_model=StreamPointsResponse,
    responses=error_responses(
        "malformed_body",
        "unsupported_media_type",
        "invalid_input",
        "overloaded",
        "too_many_streams",
        *MODEL_ERRORS,
        *STORAGE_ERRORS,
    ),
    dependencies=[Depends(require_json)],
)
async def append_points(
    series_id: SeriesId,
    body: StreamPointsRequest,
    request: Request,
    store: StoreDep,
    owner: OwnerDep,
    registry: RegistryDep,
    limiter: LimiterDep,
    inference: InferenceDep,
) -> StreamPointsResponse:
    """Append points to a stream (created on its first points) and score just those points."""
    settings: Settings = request.app.state.settings
    if len(body.values) > settings.max_stream_points:
        raise PayloadTooLarge(
            f"{len(body.values)} points in one request; at most {settings.max_stream_points} "
            "(DEEPSERVE_MAX_STREAM_POINTS): send them in parts.",
            {"max_points": settings.max_stream_points, "points": len(body.values)},
        )
    runtime = detector(registry)
    past = runtime.config.history + runtime.config.embed  # at most: a stream's new points meet its kept tail
    with limiter.slot(runtime.points_cost(len(body.values), past)):
        return await inference.offload(_append, store, runtime, owner, series_id, body)


def warmup(registry: ModelRegistry) -> int:
    """The served detector's warm-up (the code's default while it is not loaded: listing needs no model)."""
    try:
        return detector(registry).config.warmup
    except (ModelNotInstalled, ModelNotReady):
        return DEFAULT.warmup


@router.get("", response_model=StreamList, responses=error_responses("invalid_input", *STORAGE_ERRORS))
async def list_streams(
    store: StoreDep,
    owner: OwnerDep,
    registry: RegistryDep,
    inference: InferenceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Streams in this page.")] = PAGE,
    after: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="The `next` of the previous page: its last stream id.")
    ] = None,
) -> StreamList:
    """Your streams in id order, a page at a time, with their point counts and status; `next` continues."""
    page, cursor = await inference.offload(store.list, owner, limit, after)
    return StreamList(streams=[_info(i, warmup(registry)) for i in page], next=cursor)


@router.get(
    "/{series_id}",
    response_model=StreamInfo,
    responses=error_responses("invalid_input", "stream_not_found", *STORAGE_ERRORS),
)
async def get_stream(
    series_id: SeriesId, store: StoreDep, owner: OwnerDep, registry: RegistryDep, inference: InferenceDep
) -> StreamInfo:
    """One stream's point count and status."""
    return _info(await inference.offload(store.get, owner, series_id), warmup(registry))


@router.delete(
    "/{series_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses("invalid_input", "stream_not_found", *STORAGE_ERRORS),
)
async def delete_stream(series_id: SeriesId, store: StoreDep, owner: OwnerDep, inference: InferenceDep) -> Response:
    """Forget a stream and its state."""
    await inference.offload(store.delete, owner, series_id)
    return Response(status_code=204)
