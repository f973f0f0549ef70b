"""Explanation endpoints: the prediction and why (a heatmap for images: app/families/explain_images.py).

Same inputs, limits and errors as the prediction routes; each explanation also holds one of the
`DEEPSERVE_MAX_CONCURRENT_EXPLANATIONS` explanation slots (they cost several predictions' compute).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from app.families.explain_images import (
    DigitExplainer,
    DigitExplanation,
    ExplainRequest,
    Explanation,
    ImageExplainer,
    explainer_for,
)
from app.families.explain_text import (
    CALL_INPUTS,
    MAX_CHARS,
    ExplainTextRequest,
    OcclusionExplainer,
    Occlusions,
    TextExplanation,
)
from app.families.images import ImageRuntime
from app.families.sentiment import SentimentRequest, validate_texts
from app.families.tasks import DIGIT, IMAGE, SENTIMENT
from app.http.api.deps import (
    JSON_BODY,
    ExplainLimiterDep,
    InferenceDep,
    LimiterDep,
    RegistryDep,
    SettingsDep,
    model_query,
)
from app.http.api.openapi import IMAGE_BODY, JSON_ERRORS, error_responses
from app.http.uploads import read_image_upload

router = APIRouter(prefix="/explain", tags=["explain"])

IMAGE_TYPES = ["malformed_body", "invalid_image", "image_too_large", "unsupported_media_type", "invalid_input"]
IMAGE_TYPES += ["overloaded", "model_not_ready", "model_not_installed", "explanation_unavailable"]
ERRORS = error_responses(*IMAGE_TYPES)  # one call: the 503 lists all three of its types
TargetParam = Query(
    description="The class to explain (default: the predicted one): one of the model's labels (GET /models/{name})."
)
DigitTargetParam = Query(
    description="The digit to explain (default: the predicted one).", json_schema_extra={"enum": list("0123456789")}
)


async def _explain(
    request: Request,
    runtime: ImageRuntime,
    cls: type[ImageExplainer],
    target: str | None,
    settings: SettingsDep,
    limiter: LimiterDep,
    explain_limiter: ExplainLimiterDep,
    inference: InferenceDep,
) -> BaseModel:
    upload = await read_image_upload(request, settings.max_image_pixels, inference)
    with explain_limiter.slot():
        explainer = await inference.offload(explainer_for, runtime, cls)
        return await inference.serve(explainer, ExplainRequest(upload, target), limiter)


@router.post("/digit", response_model=DigitExplanation, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def explain_digit(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    explain_limiter: ExplainLimiterDep,
    inference: InferenceDep,
    target: Annotated[str | None, DigitTargetParam] = None,
) -> BaseModel:
    """Classify a handwritten digit and show which pixels raised its score (a heatmap) and the 28x28 it saw."""
    runtime = registry.for_task(DIGIT)
    args = (settings, limiter, explain_limiter, inference)
    return await _explain(request, runtime, DigitExplainer, target, *args)


@router.post("/image", response_model=Explanation, responses=error_responses(*IMAGE_TYPES, "model_not_found"),
             openapi_extra=IMAGE_BODY)  # fmt: skip
async def explain_image(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    explain_limiter: ExplainLimiterDep,
    inference: InferenceDep,
    model: Annotated[str | None, model_query(IMAGE)] = None,
    target: Annotated[str | None, TargetParam] = None,
) -> BaseModel:
    """Classify an image and show what raised the class's score (a heatmap and overlay; `method` says how)."""
    runtime = registry.for_task(IMAGE, model)
    args = (settings, limiter, explain_limiter, inference)
    return await _explain(request, runtime, ImageExplainer, target, *args)


@router.post("/sentiment", response_model=TextExplanation, responses=JSON_ERRORS, dependencies=JSON_BODY)
async def explain_sentiment(
    body: ExplainTextRequest,
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    explain_limiter: ExplainLimiterDep,
    inference: InferenceDep,
) -> BaseModel:
    """Classify a text and attribute the score to each word you wrote (leave-one-word-out through the model)."""
    limits = settings.model_copy(update={"max_text_chars": min(settings.max_text_chars, MAX_CHARS)})
    [text] = validate_texts(SentimentRequest(text=body.text), limits)
    runtime = registry.for_task(SENTIMENT, body.model)
    explainer, occlusions = OcclusionExplainer(runtime), Occlusions.of(text)

    async def check_client() -> None:
        if await request.is_disconnected():
            raise ClientDisconnect()  # app/http/middleware/request_log.py logs it as client_disconnected (499)

    with explain_limiter.slot(), limiter.slot(explainer.cost(text)):
        results = await inference.in_calls(runtime, occlusions.texts, CALL_INPUTS, check_client)
    return explainer.encode(text, [occlusions.explained(results)])
