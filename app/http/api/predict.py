"""POST /predict/digit: a handwritten digit (the digit task, app/families/tasks.py DIGIT)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.core.serving import Serving
from app.families.ood import refusing
from app.families.tasks import DIGIT
from app.http.api.deps import RejectOod, ServingDep, VersionHeader
from app.http.api.openapi import IMAGE_BODY, IMAGE_ERRORS
from app.http.uploads import disconnect_probe, read_image_upload

router = APIRouter(tags=["predict"])


@router.post(DIGIT.path, response_model=DIGIT.response, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY)
async def predict_digit(
    request: Request, serving: ServingDep, version: VersionHeader = None, reject_ood: RejectOod = False
) -> BaseModel:
    """Classify a handwritten digit image (any size or format) as 0-9; `in_distribution` says whether it looks like
    a handwritten digit at all."""
    return refusing(await digit(serving, request, version), reject_ood, ["file"])


async def digit(serving: Serving, request: Request, version: str | None = None) -> BaseModel:
    """The route's work (app/http/middleware/fast_lane.py calls it too, for a request without options)."""
    runtime = await serving.runtime(DIGIT, None, version)
    upload = await read_image_upload(request, serving)
    return await serving.serve(runtime, upload, disconnect_probe(request))
