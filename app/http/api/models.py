"""Model metadata: what is served, its version, state, inputs and training metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from app.families import FAMILIES
from app.http.api.deps import ServingDep
from app.http.api.describe import describe, public_command
from app.http.api.openapi import error_responses
from app.manifest import read_manifest
from app.schemas import ModelInfo

router = APIRouter(prefix="/models", tags=["models"])
NAME_EXAMPLES = {name: {"value": name} for name in FAMILIES}


@router.get("", response_model=list[ModelInfo], responses=error_responses())
def list_models(serving: ServingDep) -> list[ModelInfo]:
    """Every known model, served or not, with its state."""
    return [describe(record, serving.registry) for record in serving.registry.records.values()]


class VersionInfo(BaseModel):
    version: str
    status: str = Field(description="served (the promoted version, or the newest when none is) or candidate")
    metrics: dict[str, Any] = {}
    created: str = ""
    data: str = Field("", description="fingerprint of the training data")
    training_command: str = ""


@router.get(
    "/{name}/versions", response_model=list[VersionInfo], responses=error_responses("model_not_found", "not_found")
)
def list_versions(name: Annotated[str, Path(openapi_examples=NAME_EXAMPLES)], serving: ServingDep) -> list[VersionInfo]:
    """Every trained version of the model in the models folder, oldest first: which one is served (promoted) and
    which are candidates (`deepserve promote NAME VERSION` serves one)."""
    serving.registry.record(name)  # 404 for an unknown model
    manifest = read_manifest(serving.settings.models_dir)
    served = manifest.served().get(name)
    return [
        VersionInfo(
            version=entry.version,
            status="served" if served and served.version == entry.version else "candidate",
            metrics=entry.metrics,
            created=entry.created,
            data=entry.data,
            training_command=public_command(entry.command),
        )
        for entry in manifest.versions(name)
    ]


@router.get("/{name}", response_model=ModelInfo, responses=error_responses("model_not_found", "not_found"))
def get_model(name: Annotated[str, Path(openapi_examples=NAME_EXAMPLES)], serving: ServingDep) -> ModelInfo:
    """One model's version, task, input description and training metrics."""
    return describe(serving.registry.record(name), serving.registry)
