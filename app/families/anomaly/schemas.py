"""Request and response of POST /predict/anomaly."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from app.schemas import ModelRef

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
