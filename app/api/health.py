"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import RegistryDep
from app.api.openapi import error_responses
from app.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health, responses=error_responses(guarded=False))
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
async def ready(registry: RegistryDep) -> JSONResponse:
    """200 once every configured model is loaded and warmed; 503 before that or if one failed."""
    states = {name: record.state.value for name, record in registry.records.items()}
    ok = registry.ready
    body = Health(status="ready" if ok else "not_ready", models=states, message=registry.catalogue_error)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
