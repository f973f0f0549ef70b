"""Model metadata: what is served, its version, state, inputs and training metrics."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path

from app.api.deps import RegistryDep
from app.api.openapi import error_responses
from app.families import FAMILIES
from app.registry import ModelRecord
from app.schemas import ModelInfo

router = APIRouter(prefix="/models", tags=["models"])
NAME_EXAMPLES = {name: {"value": name} for name in FAMILIES}


ABSOLUTE_DIRS = re.compile(r"(?<![\w.])/(?:[^\s/]+/)+")  # "/home/ann/data/" in "--data /home/ann/data/mnist.npz"


def public_command(command: str) -> str:
    """The training command as recorded, with the folders of absolute paths hidden (they describe the trainer's
    machine, not the model): "--data /home/ann/data/mnist.npz" -> "--data .../mnist.npz"."""
    return ABSOLUTE_DIRS.sub(".../", command)


def describe(record: ModelRecord) -> ModelInfo:
    entry, family = record.entry, FAMILIES.get(record.name)
    return ModelInfo(
        name=record.name,
        state=record.state.value,
        version=entry.version if entry else None,
        task=record.task,
        endpoint=family.endpoint if family else None,
        message=record.message,
        install=record.install if record.state.value != "ready" else None,
        load_seconds=record.load_seconds,
        input=record.runtime.input_description() if record.runtime else None,
        metrics=entry.metrics if entry else {},
        files=entry.files if entry else {},
        training_command=public_command(entry.command) if entry else None,
    )


@router.get("", response_model=list[ModelInfo], responses=error_responses())
def list_models(registry: RegistryDep) -> list[ModelInfo]:
    """Every known model, served or not, with its state."""
    return [describe(record) for record in registry.records.values()]


@router.get("/{name}", response_model=ModelInfo, responses=error_responses("model_not_found", "not_found"))
def get_model(name: Annotated[str, Path(openapi_examples=NAME_EXAMPLES)], registry: RegistryDep) -> ModelInfo:
    """One model's version, task, input description and training metrics."""
    return describe(registry.record(name))
