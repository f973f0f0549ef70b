"""What a model family is: its name, task, endpoint, install command, and the runtime that serves its artifacts."""

from __future__ import annotations

from dataclasses import dataclass

from app.families.runtime import Runtime


@dataclass(frozen=True)
class Family:
    name: str
    task: str
    endpoint: str
    install: str  # the command that trains (or fetches) its artifact: shown while it is not installed
    runtime: type[Runtime]  # serves the artifacts whose manifest entry names runtime.kind
    trainer: str = ""  # the training module (`deepserve train <name>` runs it)
    extra: str = "train"  # the pyproject extra its training needs
    headline: str = "test_accuracy"  # the metric (higher is better) promotion compares: app/core/promotion.py
