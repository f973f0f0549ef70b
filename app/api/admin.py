"""Model operations on a running service: POST /admin/models/{name}/reload (behind the API key when keys are on)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ReloaderDep
from app.api.models import describe
from app.api.openapi import error_responses
from app.schemas import ModelInfo

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/models/{name}/reload", response_model=ModelInfo, responses=error_responses("model_not_found", "artifact_invalid")
)
async def reload_model(
    name: str,
    reloader: ReloaderDep,
    version: Annotated[str | None, Query(description="The version to load (default: the newest).")] = None,
) -> ModelInfo:
    """Load the model's newest artifact (or `?version=`) beside the one serving and swap them once it is warm:
    requests in flight finish on the old version, later ones get the new one, none fails. The old version is
    freed when its last request ends. A load that fails answers 422 and leaves the old version serving. With
    several worker processes, the others reload the same way within about a second (app/reloads.py)."""
    return describe(await reloader.reload(name, version))
