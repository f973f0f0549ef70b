"""Response bodies, as pydantic models so the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ModelRef(BaseModel):
    name: str
    version: str


class ModelInfo(BaseModel):
    name: str
    state: str
    version: str | None = None
    task: str | None = None
    endpoint: str | None = None
    message: str = ""
    install: str | None = None
    load_seconds: float | None = None
    input: dict[str, Any] | None = None
    metrics: dict[str, Any] = {}
    files: dict[str, str] = {}
    training_command: str | None = None


class Health(BaseModel):
    status: str
    models: dict[str, str] = {}
    message: str = ""


class ErrorDetail(BaseModel):
    type: str
    message: str
    detail: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail
