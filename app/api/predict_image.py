"""POST /predict/image: the transfer-learning classifier (upload handling identical to /predict/digit)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from app.api.deps import InferenceDep, LimiterDep, RegistryDep, SettingsDep
from app.api.predict import IMAGE_BODY, IMAGE_ERRORS
from app.costs import image_cost, image_header
from app.families.image.runtime import ImageRuntime
from app.image_upload import prepare_model_input, read_image_upload
from app.schemas import ModelRef

router = APIRouter(prefix="/predict", tags=["predict"])


class LabelScore(BaseModel):
    label: str
    score: float


class ImagePrediction(BaseModel):
    label: str
    confidence: float
    top_k: list[LabelScore]
    model: ModelRef


@router.post("/image", response_model=ImagePrediction, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY)
async def predict_image(
    request: Request, registry: RegistryDep, settings: SettingsDep, limiter: LimiterDep, inference: InferenceDep
) -> ImagePrediction:
    """Classify an image (any size, format or mode) into the classes the transfer model was trained on."""
    runtime = registry.runtime("image", ImageRuntime)
    data = await read_image_upload(request)  # the whole body first: a slow upload holds no slot
    pixels, mode = await run_in_threadpool(image_header, data, settings.max_image_pixels)  # the header only
    with limiter.slot(image_cost(pixels, mode)):
        x = await prepare_model_input(data, settings.max_image_pixels, runtime.prepare)
        [out] = await inference(runtime, [x])
    return ImagePrediction(**out, model=ModelRef(name=runtime.entry.name, version=runtime.entry.version))
