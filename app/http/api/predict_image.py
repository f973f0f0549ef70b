"""POST /predict/image: any image-classification family (upload handling identical to /predict/digit).

`?model=<name>` picks one of the families whose task is TASK (app/families). Without it the transfer model
("image") answers, or says how to install it: never another family, whose labels would surprise its clients.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.core.serving import Serving
from app.families import FAMILIES
from app.families.images import ImageClassifier, ImagePrediction
from app.http.api.deps import ServingDep, VersionHeader
from app.http.api.predict import IMAGE_BODY, IMAGE_ERRORS, RejectOod, refusing
from app.http.uploads import read_image_upload

router = APIRouter(prefix="/predict", tags=["predict"])

TASK = "image-classification"
DEFAULT_MODEL = "image"
IMAGE_MODELS = [name for name, family in FAMILIES.items() if family.task == TASK]
ModelParam = Query(
    description=f"The model to classify with: one of {', '.join(IMAGE_MODELS)} (default: {DEFAULT_MODEL}). A known "
    "model that is not installed answers 503.",
    json_schema_extra={"enum": IMAGE_MODELS},
)


@router.post("/image", response_model=ImagePrediction, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY)
async def predict_image(
    request: Request,
    serving: ServingDep,
    model: Annotated[str | None, ModelParam] = None,
    version: VersionHeader = None,
    reject_ood: RejectOod = False,
) -> BaseModel:
    """Classify an image (any size, format or mode) into the classes the chosen model was trained on."""
    return refusing(await image(serving, request, model, version), reject_ood)


async def image(serving: Serving, request: Request, model: str | None, version: str | None = None) -> BaseModel:
    """The route's work (app/http/middleware/fast_lane.py calls it too, for a request whose only option is
    `?model=`)."""
    registry = serving.registry
    runtime = registry.for_task(TASK, DEFAULT_MODEL if model is None else model, ImageClassifier)  # "?model=": 404
    runtime = await registry.pin(runtime, version)
    upload = await read_image_upload(request, serving.settings.max_image_pixels, serving.inference)
    return await serving.inference.serve(runtime, upload, serving.limiter)
