"""POST /predict/anomaly: per-point anomaly scores for a time series."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.api.deps import InferenceDep, LimiterDep, RegistryDep, require_json
from app.api.openapi import error_responses
from app.families.anomaly.runtime import AnomalyRuntime
from app.families.anomaly.schemas import AnomalyRequest, AnomalyResponse

router = APIRouter(prefix="/predict", tags=["predict"])

ERRORS = error_responses(
    "malformed_body", "unsupported_media_type", "invalid_input", "overloaded", "model_not_ready", "model_not_installed"
)


@router.post("/anomaly", response_model=AnomalyResponse, responses=ERRORS, dependencies=[Depends(require_json)])
async def predict_anomaly(
    body: AnomalyRequest, registry: RegistryDep, limiter: LimiterDep, inference: InferenceDep
) -> BaseModel:
    """Per-point anomaly scores, flags over the stored threshold, and the flagged regions."""
    return await inference.serve(registry.runtime("anomaly", AnomalyRuntime), body, limiter)
