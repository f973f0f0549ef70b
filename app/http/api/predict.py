"""Prediction endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.core.serving import Serving
from app.families.digit.runtime import DigitPrediction, DigitRuntime
from app.families.ood import OodFields, refuse_flagged
from app.http.api.deps import ServingDep, VersionHeader
from app.http.api.openapi import error_responses
from app.http.uploads import read_image_upload

router = APIRouter(prefix="/predict", tags=["predict"])

IMAGE_ERRORS = error_responses(
    "malformed_body",
    "model_not_found",  # a version (X-Model-Version) that does not exist
    "invalid_image",
    "image_too_large",
    "unsupported_media_type",
    "invalid_input",
    "overloaded",
    "model_not_ready",
    "model_not_installed",
    "out_of_distribution",  # ?reject_ood=true and the image is not like the model's training images
)
RejectOod = Annotated[
    bool,
    Query(
        description="true: answer 422 out_of_distribution instead of a prediction when the input does not look like "
        "what the model was trained on (the answer's in_distribution is false)."
    ),
]
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,  # another field is a 422 (a misspelt option must not pass)
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The image file."}},
                },
                "encoding": {"file": {"contentType": "image/*, application/octet-stream"}},
            },
            "image/*": {"schema": {"type": "string", "format": "binary", "description": "The image file as the body."}},
        },
    }
}


@router.post("/digit", response_model=DigitPrediction, responses=IMAGE_ERRORS, openapi_extra=IMAGE_BODY)
async def predict_digit(
    request: Request, serving: ServingDep, version: VersionHeader = None, reject_ood: RejectOod = False
) -> BaseModel:
    """Classify a handwritten digit image (any size or format) as 0-9; `in_distribution` says whether it looks like
    a handwritten digit at all."""
    return refusing(await digit(serving, request, version), reject_ood)


def refusing(answer: BaseModel, reject_ood: bool) -> BaseModel:
    """The answer, or with `reject_ood` a 422 out_of_distribution when its input was flagged."""
    if reject_ood and isinstance(answer, OodFields):
        refuse_flagged([answer], ["file"])
    return answer


async def digit(serving: Serving, request: Request, version: str | None = None) -> BaseModel:
    """The route's work (app/http/middleware/fast_lane.py calls it too, for a request without options)."""
    runtime = await serving.registry.pin(serving.registry.runtime("digit", DigitRuntime), version)
    upload = await read_image_upload(request, serving.settings.max_image_pixels, serving.inference)
    return await serving.inference.serve(runtime, upload, serving.limiter)
