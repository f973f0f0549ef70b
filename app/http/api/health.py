"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.http.api.deps import ServingDep
from app.http.api.describe import fallback
from app.http.api.openapi import error_responses
from app.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "/live", response_model=Health, response_model_exclude={"fallbacks"}, responses=error_responses(guarded=False)
)
async def live() -> Health:
    """The process is up (models may still be loading)."""
    return Health(status="alive")


@router.get(
    "/ready",
    response_model=Health,
    responses={
        **error_responses(guarded=False),
        503: {"model": Health, "description": "Not ready: a model is loading or failed."},
    },
)
async def ready(serving: ServingDep) -> JSONResponse:
    """200 once every configured model is loaded and warmed; 503 before that or if one failed. A model that serves
    the version promoted before its promoted one, because that one failed to load at start-up, answers: the service
    is ready, with status `degraded` and the model in `fallbacks` (app/core/registry.py says why)."""
    registry = serving.registry
    states = {name: record.state.value for name, record in registry.records.items()}
    fallbacks = {name: f for name, record in registry.records.items() if (f := fallback(record)) is not None}
    ok = registry.ready
    message = registry.catalogue_error
    if fallbacks and not message:
        message = "; ".join(
            f"{name} serves version {f.serving}: version {f.wanted} failed to load (GET /models/{name})"
            for name, f in fallbacks.items()
        )
    status = ("degraded" if fallbacks else "ready") if ok else "not_ready"
    body = Health(status=status, models=states, message=message, fallbacks=fallbacks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
