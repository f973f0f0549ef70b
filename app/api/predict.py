"""Prediction endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.api.deps import InferenceDep, LimiterDep, RegistryDep, SettingsDep
from app.api.openapi import error_responses
from app.families.digit.runtime import DigitPrediction, DigitRuntime
from app.image_upload import read_image_upload

router = APIRouter(prefix="/predict", tags=["predict"])

IMAGE_ERRORS = error_responses(
    "malformed_body",
    "invalid_image",
    "image_too_large",
    "unsupported_media_type",
    "invalid_input",
    "overloaded",
    "model_not_ready",
    "model_not_installed",
)
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
    request: Request, registry: RegistryDep, settings: SettingsDep, limiter: LimiterDep, inference: InferenceDep
) -> BaseModel:
    """Classify a handwritten digit image (any size or format) as 0-9."""
    runtime = registry.runtime("digit", DigitRuntime)
    upload = await read_image_upload(request, settings.max_image_pixels, inference)
    return await inference.serve(runtime, upload, limiter)
