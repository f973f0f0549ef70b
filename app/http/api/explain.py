"""Explanation endpoints: the prediction and why (a heatmap for images: app/families/explain_images.py).

Same inputs, limits and errors as the prediction routes; each explanation also holds one of the
`DEEPSERVE_MAX_CONCURRENT_EXPLANATIONS` explanation slots (they cost several predictions' compute).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.families.explain_images import DigitExplainer, DigitExplanation, ExplainRequest, Explanation, explainer_for
from app.families.explain_text import MAX_CHARS, ExplainTextRequest, OcclusionExplainer, TextExplanation
from app.families.sentiment import SentimentRequest, validate_texts
from app.families.tasks import DIGIT, IMAGE, SENTIMENT
from app.http.api.deps import JSON_BODY, ServingDep, model_query
from app.http.api.openapi import IMAGE_BODY, JSON_ERRORS, error_responses
from app.http.uploads import disconnect_probe, read_image_upload

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


@router.post("/digit", response_model=DigitExplanation, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def explain_digit(
    request: Request, serving: ServingDep, target: Annotated[str | None, DigitTargetParam] = None
) -> BaseModel:
    """Classify a handwritten digit and show which pixels raised its score (a heatmap) and the 28x28 it saw."""
    runtime = await serving.runtime(DIGIT)
    upload = await read_image_upload(request, serving)
    explainer = partial(explainer_for, cls=DigitExplainer)
    return await serving.explain(runtime, explainer, ExplainRequest(upload, target), disconnect_probe(request))


@router.post("/image", response_model=Explanation, responses=error_responses(*IMAGE_TYPES, "model_not_found"),
             openapi_extra=IMAGE_BODY)  # fmt: skip
async def explain_image(
    request: Request,
    serving: ServingDep,
    model: Annotated[str | None, model_query(IMAGE)] = None,
    target: Annotated[str | None, TargetParam] = None,
) -> BaseModel:
    """Classify an image and show what raised the class's score (a heatmap and overlay; `method` says how)."""
    runtime = await serving.runtime(IMAGE, model)
    upload = await read_image_upload(request, serving)
    return await serving.explain(runtime, explainer_for, ExplainRequest(upload, target), disconnect_probe(request))


@router.post("/sentiment", response_model=TextExplanation, responses=JSON_ERRORS, dependencies=JSON_BODY)
async def explain_sentiment(body: ExplainTextRequest, request: Request, serving: ServingDep) -> BaseModel:
    """Classify a text and attribute the score to each word you wrote (leave-one-word-out through the model)."""
    limits = serving.settings.model_copy(update={"max_text_chars": min(serving.settings.max_text_chars, MAX_CHARS)})
    [text] = validate_texts(SentimentRequest(text=body.text), limits)
    runtime = await serving.runtime(SENTIMENT, body.model)
    return await serving.explain(runtime, OcclusionExplainer, text, disconnect_probe(request))
