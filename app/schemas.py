"""Response bodies, as pydantic models so the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    name: str
    version: str


class Fallback(BaseModel):
    """A model serving another version than the one the models folder asks for, because that one failed to load
    at start-up (app/registry.py); a reload of the wanted version (or a new promotion) ends it."""

    wanted: str | None = Field(description="The version promoted.json (else the newest) names; null when unreadable.")
    serving: str = Field(description="The version answering instead: the one promoted before it.")


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
    fallback: Fallback | None = None


class Health(BaseModel):
    status: str = Field(description="ready; degraded (ready, but a model serves a fallback version); not_ready")
    models: dict[str, str] = {}
    message: str = ""
    fallbacks: dict[str, Fallback] = Field({}, description="model -> the version it serves instead of the wanted one")


class ErrorDetail(BaseModel):
    type: str
    message: str
    detail: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail
