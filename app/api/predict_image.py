"""POST /predict/image: any image-classification family (upload handling identical to /predict/digit).

`?model=<name>` picks one of the families whose task is TASK (app/families). Without it the transfer model
("image") answers, or says how to install it: never another family, whose labels would surprise its clients.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.api.deps import InferenceDep, LimiterDep, RegistryDep, SettingsDep
from app.api.openapi import error_responses
from app.api.predict import IMAGE_BODY, IMAGE_ERRORS
from app.costs import image_cost
from app.families import FAMILIES
from app.families.runtime import ImageClassifier
from app.image_upload import predict_upload
from app.schemas import ModelRef

router = APIRouter(prefix="/predict", tags=["predict"])

TASK = "image-classification"
DEFAULT_MODEL = "image"
IMAGE_MODELS = [name for name, family in FAMILIES.items() if family.task == TASK]
ERRORS = {**IMAGE_ERRORS, **error_responses("model_not_found")}
ModelParam = Query(
    description=f"The model to classify with: one of {', '.join(IMAGE_MODELS)} (default: {DEFAULT_MODEL}). A known "
    "model that is not installed answers 503.",
    json_schema_extra={"enum": IMAGE_MODELS},
)


class LabelScore(BaseModel):
    label: str
    score: float


class ImagePrediction(BaseModel):
    label: str
    confidence: float
    top_k: list[LabelScore]
    model: ModelRef


@router.post("/image", response_model=ImagePrediction, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def predict_image(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    inference: InferenceDep,
    model: Annotated[str | None, ModelParam] = None,
) -> ImagePrediction:
    """Classify an image (any size, format or mode) into the classes the chosen model was trained on."""
    runtime = registry.for_task(TASK, DEFAULT_MODEL if model is None else model)  # "?model=" is a 404
    if not isinstance(runtime, ImageClassifier):  # every family of TASK serves an ImageClassifier
        raise TypeError(f"model {runtime.entry.name} is served by {type(runtime).__name__}, not an ImageClassifier")
    out = await predict_upload(
        request, runtime, runtime.prepare, image_cost, settings.max_image_pixels, limiter, inference
    )
    return ImagePrediction(**out, model=ModelRef(name=runtime.entry.name, version=runtime.entry.version))
