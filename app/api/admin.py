"""Model operations on a running service: POST /admin/models/{name}/reload. Every route under /admin changes what the
service serves, so app/auth.py lets only admins call it: an admin key (DEEPSERVE_ADMIN_KEYS), or, with none
configured, a request made on the service's own host."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ReloaderDep
from app.api.models import describe
from app.api.openapi import error_responses
from app.schemas import ModelInfo

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/models/{name}/reload",
    response_model=ModelInfo,
    responses=error_responses("model_not_found", "artifact_invalid", "forbidden"),
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
