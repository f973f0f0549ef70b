"""POST /predict/anomaly: per-point anomaly scores for a time series."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.families.anomaly.context_runtime import NearestContextRuntime
from app.families.anomaly.runtime import AnomalyRuntime
from app.families.anomaly.schemas import AnomalyRequest, AnomalyResponse, SeriesAnomalyResponse
from app.http.api.deps import InferenceDep, LimiterDep, RegistryDep, VersionHeader, require_json
from app.http.api.openapi import error_responses

router = APIRouter(prefix="/predict", tags=["predict"])

ERRORS = error_responses(
    "malformed_body",
    "model_not_found",
    "unsupported_media_type",
    "invalid_input",
    "overloaded",
    "model_not_ready",
    "model_not_installed",
)


@router.post(
    "/anomaly",
    response_model=SeriesAnomalyResponse | AnomalyResponse,
    responses=ERRORS,
    dependencies=[Depends(require_json)],
)
async def predict_anomaly(
    body: AnomalyRequest,
    registry: RegistryDep,
    limiter: LimiterDep,
    inference: InferenceDep,
    version: VersionHeader = None,
) -> BaseModel:
    """Any series, scored on its own past (causal by default): per-point scores, alarms, expected values and bands,
    alarm regions. `method: autoencoder` scores with the committed nyc_taxi model instead. X-Model-Version pins
    a version of the method's model (nearest_context or anomaly)."""
    if body.method == "autoencoder":
        runtime: AnomalyRuntime | NearestContextRuntime = registry.runtime("anomaly", AnomalyRuntime)
    else:
        runtime = registry.runtime("nearest_context", NearestContextRuntime)
    return await inference.serve(await registry.pin(runtime, version), body, limiter)
