"""POST /predict/anomaly: per-point anomaly scores for a time series."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.api.deps import InferenceDep, LimiterDep, RegistryDep, VersionHeader, require_json
from app.api.openapi import error_responses
from app.families.anomaly import series
from app.families.anomaly.runtime import AnomalyRuntime
from app.families.anomaly.schemas import AnomalyRequest, AnomalyResponse, SeriesAnomalyResponse

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
    alarm regions. `method: autoencoder` scores with the committed nyc_taxi model instead (X-Model-Version pins
    one of its versions)."""
    if body.method == "autoencoder":
        runtime = await registry.pin(registry.runtime("anomaly", AnomalyRuntime), version)
        return await inference.serve(runtime, body, limiter)
    with limiter.slot(series.cost(len(body.values))):
        return await inference.offload(series.respond, body)
