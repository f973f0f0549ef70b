"""A model's description as GET /models, GET /health/ready and the admin routes show it."""

from __future__ import annotations

import re

from app.core.registry import ModelRecord, ModelRegistry
from app.families import FAMILIES
from app.families.tasks import TASKS
from app.schemas import Fallback, ModelInfo

ABSOLUTE_DIRS = re.compile(r"(?<![\w.])/(?:[^\s/]+/)+")  # "/home/ann/data/" in "--data /home/ann/data/mnist.npz"


def public_command(command: str) -> str:
    """The training command as recorded, with the folders of absolute paths hidden (they describe the trainer's
    machine, not the model): "--data /home/ann/data/mnist.npz" -> "--data .../mnist.npz"."""
    return ABSOLUTE_DIRS.sub(".../", command)


def describe(record: ModelRecord, registry: ModelRegistry) -> ModelInfo:
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
        fallback=fallback(record),
        default=family is not None and registry.default(TASKS[family.task]) == record.name,
    )


def fallback(record: ModelRecord) -> Fallback | None:
    """What the model serves instead of the version it should, when a start-up fallback serves (else None)."""
    if record.state.value != "ready" or not record.fallback or record.entry is None:
        return None
    return Fallback(wanted=record.wanted, serving=record.entry.version)
