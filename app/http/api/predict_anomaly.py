"""POST /predict/anomaly: per-point anomaly scores for a time series (the task: app/families/tasks.py ANOMALY)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.families.anomaly.schemas import AnomalyRequest
from app.families.tasks import ANOMALY
from app.http.api.deps import JSON_BODY, ServingDep, VersionHeader
from app.http.api.openapi import JSON_ERRORS

router = APIRouter(tags=["predict"])


@router.post(ANOMALY.path, response_model=ANOMALY.response, responses=JSON_ERRORS, dependencies=JSON_BODY)
async def predict_anomaly(body: AnomalyRequest, serving: ServingDep, version: VersionHeader = None) -> BaseModel:
    """Any series, scored on its own past (causal by default): per-point scores, alarms, expected values and bands,
    alarm regions. `method: autoencoder` scores with the committed nyc_taxi model instead. X-Model-Version pins
    a version of the method's model (nearest_context or anomaly)."""
    return await serving.serve(await serving.runtime(ANOMALY, body.method, version), body)
