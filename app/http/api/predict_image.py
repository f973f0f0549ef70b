"""POST /predict/image: any image-classification family (upload handling identical to /predict/digit).

`?model=<name>` picks one of the task's families (app/families/tasks.py IMAGE); without it, the task's default.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.core.serving import Serving
from app.families.ood import refusing
from app.families.tasks import IMAGE
from app.http.api.deps import RejectOod, ServingDep, VersionHeader, model_query
from app.http.api.openapi import IMAGE_BODY, IMAGE_ERRORS
from app.http.uploads import disconnect_probe, read_image_upload

router = APIRouter(tags=["predict"])


@router.post(IMAGE.path, response_model=IMAGE.response, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY)
async def predict_image(
    request: Request,
    serving: ServingDep,
    model: Annotated[str | None, model_query(IMAGE)] = None,
    version: VersionHeader = None,
    reject_ood: RejectOod = False,
) -> BaseModel:
    """Classify an image (any size, format or mode) into the classes the chosen model was trained on."""
    return refusing(await image(serving, request, model, version), reject_ood, ["file"])


async def image(serving: Serving, request: Request, model: str | None, version: str | None = None) -> BaseModel:
    """The route's work (app/http/middleware/fast_lane.py calls it too, for a request whose only option is
    `?model=`)."""
    runtime = await serving.runtime(IMAGE, model, version)  # an unknown ?model=: 404
    upload = await read_image_upload(request, serving)
    return await serving.serve(runtime, upload, disconnect_probe(request))
