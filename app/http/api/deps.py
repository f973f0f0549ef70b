"""Typed dependencies the routes share.

All are `async def`: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per dependency per
request for what is an attribute lookup.
"""

from __future__ import annotations

from email.message import Message
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from app.config import Settings
from app.core.inference import Inference
from app.core.limiter import ConcurrencyLimiter
from app.core.metrics import Metrics
from app.core.registry import ModelRegistry
from app.core.reloads import Reloader
from app.core.serving import Serving
from app.errors import UnsupportedMediaType
from app.families.family import Task
from app.families.tasks import models


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_limiter(request: Request) -> ConcurrencyLimiter:
    return request.app.state.limiter


async def get_explain_limiter(request: Request) -> ConcurrencyLimiter:
    return request.app.state.explain_limiter


ExplainLimiterDep = Annotated[ConcurrencyLimiter, Depends(get_explain_limiter)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LimiterDep = Annotated[ConcurrencyLimiter, Depends(get_limiter)]


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_inference(request: Request) -> Inference:
    return request.app.state.inference


InferenceDep = Annotated[Inference, Depends(get_inference)]


async def get_reloader(request: Request) -> Reloader:
    return request.app.state.reloader


ReloaderDep = Annotated[Reloader, Depends(get_reloader)]


async def get_serving(request: Request) -> Serving:
    return request.app.state.serving


ServingDep = Annotated[Serving, Depends(get_serving)]
VersionHeader = Annotated[
    str | None,
    Header(
        alias="X-Model-Version",
        min_length=1,  # an empty header is a malformed pin (422), not "the promoted one"
        description="Answer with this version of the model instead of the promoted one (GET /models/{name}/versions "
        "lists them); loaded on first use. 404 for a version that does not exist.",
    ),
]


async def require_json(request: Request) -> None:
    """415 for a body that is not JSON, or that says nothing of its type (FastAPI would otherwise report the first
    as a 422 validation error and read the second as no body at all: a 422 "missing a field")."""
    content_type = request.headers.get("content-type")
    if not content_type:
        raise UnsupportedMediaType("Send a JSON body with content-type application/json (the request had none).")
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise UnsupportedMediaType(
            f"Send a JSON body with content-type application/json, not {content_type}.",
            {"content_type": content_type},
        )


JSON_BODY = [Depends(require_json)]  # a route's `dependencies=`: its body must say it is JSON


def model_query(task: Task) -> Any:
    """The `?model=` parameter of an image task's routes: one of its families (its default when absent)."""
    names = models(task)
    return Query(
        description=f"The model to classify with: one of {', '.join(names)} (default: {task.default}). A known model "
        "that is not installed answers 503.",
        json_schema_extra={"enum": names},
    )
