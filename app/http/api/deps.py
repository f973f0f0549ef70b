"""What the routes take besides their request, in one style: typed `Annotated[..., Depends(...)]` parameters, and
the `Header`/`Query` parameters they share. The core comes as one object, Serving (app/core/serving.py): FastAPI
spends ~40 us per dependency per request, so a route takes the fewest it can.

All are `async def`: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per dependency per
request for what is an attribute lookup.
"""

from __future__ import annotations

from email.message import Message
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from app.core.reloads import Reloader
from app.core.serving import Serving
from app.errors import UnsupportedMediaType
from app.families.anomaly.streams import NO_OWNER, StreamStore
from app.families.family import Task
from app.families.tasks import models
from app.http.middleware.auth import KEY_NAME


async def get_serving(request: Request) -> Serving:
    return request.app.state.serving


async def get_reloader(request: Request) -> Reloader:
    return request.app.state.reloader


async def get_streams(request: Request) -> StreamStore:
    return request.app.state.streams


async def get_owner(request: Request) -> str:
    """The caller's API key name (app/http/middleware/auth.py); with keys off, the one owner."""
    return str(request.scope.get(KEY_NAME, NO_OWNER))


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


ServingDep = Annotated[Serving, Depends(get_serving)]
ReloaderDep = Annotated[Reloader, Depends(get_reloader)]
StreamsDep = Annotated[StreamStore, Depends(get_streams)]
OwnerDep = Annotated[str, Depends(get_owner)]
JSON_BODY = [Depends(require_json)]  # a route's `dependencies=`: its body must say it is JSON
RejectOod = Annotated[
    bool,
    Query(
        description="true: answer 422 out_of_distribution instead of a prediction when the input does not look like "
        "what the model was trained on (the answer's in_distribution is false)."
    ),
]
VersionHeader = Annotated[
    str | None,
    Header(
        alias="X-Model-Version",
        min_length=1,  # an empty header is a malformed pin (422), not "the promoted one"
        description="Answer with this version of the model instead of the promoted one (GET /models/{name}/versions "
        "lists them); loaded on first use. 404 for a version that does not exist.",
    ),
]


def model_query(task: Task) -> Any:
    """The `?model=` parameter of an image task's routes: one of its families (its default when absent)."""
    names = models(task)
    return Query(
        description=f"The model to classify with: one of {', '.join(names)} (default: {task.default}). A known model "
        "that is not installed answers 503.",
        json_schema_extra={"enum": names},
    )
