"""Anomaly scores for a time series."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends
from pydantic import BaseModel, BeforeValidator, Field, model_validator

from app.api.deps import InferenceDep, LimiterDep, RegistryDep, require_json
from app.api.openapi import error_responses
from app.costs import series_cost
from app.errors import InvalidInput
from app.families.anomaly.runtime import AnomalyRuntime
from app.schemas import ModelRef

router = APIRouter(prefix="/predict", tags=["predict"])

MAX_POINTS = 20_000  # about two seconds of scoring on one CPU core; longer series should be sent in parts
MAX_ABS_VALUE = 1e30  # far beyond any real series; values near 1e300 overflowed the scoring into NaN (null) scores


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("a timestamp is an ISO 8601 string")
    return value


# What the schema says, no more: JSON numbers (strict: not true/false or "1.5"), ISO 8601 strings (not epoch numbers).
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
Timestamp = Annotated[datetime, BeforeValidator(_text)]


class AnomalyRequest(BaseModel):
    values: list[FiniteFloat] = Field(max_length=MAX_POINTS, description="The series, oldest first.")
    timestamps: list[Timestamp] | None = Field(None, description="Optional ISO 8601 time of each value.")

    @model_validator(mode="after")
    def same_lengths(self) -> AnomalyRequest:
        if self.timestamps is not None and len(self.timestamps) != len(self.values):
            raise ValueError(f"{len(self.timestamps)} timestamps for {len(self.values)} values")
        return self


class AlarmRegion(BaseModel):
    start: int
    end: int
    start_time: datetime | None = None
    end_time: datetime | None = None


class AnomalyResponse(BaseModel):
    scores: list[float]
    is_anomaly: list[bool]
    threshold: float
    window: int
    regions: list[AlarmRegion] = Field(description="Maximal runs of flagged points, first and last index inclusive.")
    model: ModelRef


ERRORS = error_responses(
    "malformed_body", "unsupported_media_type", "invalid_input", "overloaded", "model_not_ready", "model_not_installed"
)


@router.post("/anomaly", response_model=AnomalyResponse, responses=ERRORS, dependencies=[Depends(require_json)])
async def predict_anomaly(
    body: AnomalyRequest, registry: RegistryDep, limiter: LimiterDep, inference: InferenceDep
) -> AnomalyResponse:
    """Per-point anomaly scores, flags over the stored threshold, and the flagged regions."""
    runtime = registry.runtime("anomaly", AnomalyRuntime)
    window = runtime.window
    if len(body.values) < window:
        raise InvalidInput(
            f"The series has {len(body.values)} values; at least one window of {window} is needed.",
            {"window": window, "length": len(body.values)},
        )
    with limiter.slot(series_cost(len(body.values))):
        [out] = await inference(runtime, [np.asarray(body.values, dtype=np.float64)])
    times = body.timestamps
    regions = [
        AlarmRegion(start=a, end=b, start_time=times[a] if times else None, end_time=times[b] if times else None)
        for a, b in out["regions"]
    ]
    return AnomalyResponse(
        scores=out["scores"].tolist(),
        is_anomaly=out["flags"].tolist(),
        threshold=out["threshold"],
        window=window,
        regions=regions,
        model=ModelRef(name=runtime.entry.name, version=runtime.entry.version),
    )
