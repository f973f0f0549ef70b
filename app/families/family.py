"""What a model family is (its name, task, endpoint, install command, and the runtime that serves its artifacts), and
what a task is: the route, request and response every family of the task shares (app/families/tasks.py declares
them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from app.families.runtime import Runtime

R = TypeVar("R", bound=Runtime)


@dataclass(frozen=True)
class Family:
    name: str
    task: str  # the name of its Task (app/families/tasks.py); model.json records it
    endpoint: str
    install: str  # the command that trains (or fetches) its artifact: shown while it is not installed
    runtime: type[Runtime]  # serves the artifacts whose manifest entry names runtime.kind
    trainer: str = ""  # the training module (`deepserve train <name>` runs it)
    extra: str = "train"  # the pyproject extra its training needs
    headline: str = "test_accuracy"  # the metric (higher is better) promotion compares: app/core/promotion.py


@dataclass(frozen=True)
class Task(Generic[R]):
    """One kind of prediction, declared once: its route (app/http/api), the OpenAPI document, the registry's choice
    of model (app/core/registry.py for_task), the command line (`deepserve predict`) and training (model.json's
    `task`) all read it. Its families are those whose `task` is its name, in registration order."""

    name: str
    path: str  # POST <path> answers it
    runtime: type[R]  # the class every family of the task is served by (a family of another: TypeError at import)
    response: Any  # the response model (a union when its models answer differently)
    request: type[BaseModel] | None = None  # the JSON body; None: an uploaded image (multipart field `file` or raw)
    default: str | None = None  # the model answering a request that names none; None: the first ready family
    selector: str = "model"  # the request's field (query parameter for an image) naming the model; "": none
    methods: Mapping[str, str] = field(default_factory=dict)  # selector value -> model, when it names a method

    def model_for(self, choice: str | None) -> str | None:
        """The model a request's selector value (None: none sent) asks for; None: the task's default choice."""
        if choice is None:
            return self.default
        return self.methods.get(choice, choice)

    def choose(self, model: str) -> dict[str, str]:
        """What a request sends to be answered by `model` (`deepserve predict` builds its request with it)."""
        if not self.selector:
            return {}
        methods = {name: method for method, name in self.methods.items()}
        return {self.selector: methods.get(model, model)}
