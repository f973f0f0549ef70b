"""Model operations on a running service: POST /admin/models/{name}/reload. Every route under /admin changes what the
service serves, so app/http/middleware/auth.py lets only admins call it: an admin key (DEEPSERVE_ADMIN_KEYS), or,
with none configured, a request made on the service's own host."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.promotion import check
from app.errors import PromotionRefused, echo
from app.http.api.deps import ReloaderDep, ServingDep
from app.http.api.describe import describe
from app.http.api.openapi import error_responses
from app.schemas import ModelInfo

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/models/{name}/reload",
    response_model=ModelInfo,
    responses=error_responses("model_not_found", "promotion_refused", "invalid_input", "artifact_invalid", "forbidden"),
)
async def reload_model(
    name: str,
    reloader: ReloaderDep,
    serving: ServingDep,
    version: Annotated[str | None, Query(description="The version to load (default: the promoted one).")] = None,
    force: Annotated[
        bool, Query(description="Load `version` even when the promotion gate refuses it (a worse headline metric).")
    ] = False,
) -> ModelInfo:
    """Load the model's promoted artifact (or `?version=`) beside the one serving and swap them once it is warm:
    requests in flight finish on the old version, later ones get the new one, none fails. The old version is
    freed when its last request ends. A load that fails, or a promoted version whose model.json is unreadable,
    answers 422 and leaves the old version serving. A version whose headline metric is worse than the promoted
    one's is refused (409) unless `force=true`: the gate `deepserve promote` applies (app/core/promotion.py). With
    several worker processes, all of them load it and then swap, or none does (app/core/reloads.py)."""
    if version is not None and not force:
        await asyncio.to_thread(refuse, serving.settings.models_dir, name, version)  # reads the models folder
    return describe(await reloader.reload(name, version), serving.registry)


def refuse(models_dir: Path, name: str, version: str) -> None:
    """PromotionRefused (409) when the promotion gate refuses serving `version` (nothing when it has no such
    artifact: the reload then says so)."""
    try:
        verdict = check(models_dir, name, version)
    except KeyError:
        return
    if verdict.refusal:
        raise PromotionRefused(
            f"Model '{echo(name)}' version '{echo(version)}' is refused by the promotion gate: {verdict.refusal}. "
            "Reload it anyway with force=true.",
            {"model": name, "version": version, "metric": verdict.headline, "value": verdict.after,
             "promoted_value": verdict.before},
        )  # fmt: skip
