"""Every task the service answers, one line each (app/families/family.py Task). A new family of a task is its
folder and its line in app/families/__init__.py; a new task is a family package, its line here and a route of a
few lines in app/http/api that reads it."""

from __future__ import annotations

from typing import Any

from app.families import FAMILIES
from app.families.anomaly.schemas import (
    AnomalyRequest,
    AnomalyResponse,
    MultivariateAnomalyResponse,
    SeriesAnomalyResponse,
)
from app.families.digit.runtime import DigitPrediction, DigitRuntime
from app.families.family import Task
from app.families.images import ImageClassifier, ImagePrediction
from app.families.runtime import Runtime
from app.families.sentiment import SentimentRequest, SentimentResponse, SentimentRuntime

# Each line: name (model.json's `task`), route, the runtime class of its families, the response; then the request body
# (None: an uploaded image), the model answering a request that names none (None: the first ready family), the
# request's field or query parameter that names the model ("": none) and what its values mean when they name methods.
DIGIT = Task("image-classification/digit", "/predict/digit", DigitRuntime, DigitPrediction, default="digit",
             selector="")  # fmt: skip
# Without ?model= the transfer model answers (or says how to install it): never another family, whose labels would
# surprise its clients.
IMAGE = Task("image-classification", "/predict/image", ImageClassifier, ImagePrediction, default="image")
SENTIMENT = Task("text-classification/sentiment", "/predict/sentiment", SentimentRuntime, SentimentResponse,
                 request=SentimentRequest)  # fmt: skip
ANOMALY = Task("anomaly-detection/timeseries", "/predict/anomaly", Runtime,
               SeriesAnomalyResponse | MultivariateAnomalyResponse | AnomalyResponse,
               request=AnomalyRequest, default="nearest_context", selector="method",
               methods={"nearest_context": "nearest_context", "autoencoder": "anomaly"})  # fmt: skip

TASKS: dict[str, Task[Any]] = {task.name: task for task in (DIGIT, IMAGE, SENTIMENT, ANOMALY)}


def models(task: Task) -> list[str]:
    """The task's families, in registration order (the first ready one is the default where the task has none)."""
    return [name for name, family in FAMILIES.items() if family.task == task.name]


def check() -> None:
    """Every family names a declared task, and its runtime is the task's kind (a wrong registration stops the import
    of the service, not a request)."""
    for family in FAMILIES.values():
        task = TASKS.get(family.task)
        if task is None:
            raise ValueError(f"family {family.name}: unknown task {family.task!r} (known: {sorted(TASKS)})")
        if not issubclass(family.runtime, task.runtime):
            raise TypeError(f"family {family.name}: {family.runtime.__name__} is not a {task.runtime.__name__}")


check()
