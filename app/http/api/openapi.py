"""The OpenAPI document states what the service really enforces, so a schema-valid request is never refused for a
reason the schema does not say.

Two parts:
- `error_responses(...)`: a route's `responses=`, generated from `ERROR_TABLE`: every status it can answer, each
  with the error body whose `type` is one of the documented types for that status, and the `Allow` (405) and
  `Retry-After` (429) headers. The errors any route can answer (500, 405, 408, 413, and 401/429 from the auth and
  rate limits outside /health) are always added.
- `install_openapi(app)`: the app's `openapi()` adds the limits only the running app knows, each request body its own
  (`RequestBody.served_schema`: the sentiment text limits from the Settings, the anomaly series' minimum length from
  the window of the model served, known once the registry has loaded; until then the document is rebuilt on each
  request).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from app.config import Settings
from app.core.registry import ModelRegistry, State
from app.errors import ERROR_TABLE
from app.schemas import ErrorBody, RequestBody

ALWAYS = ("internal_error", "method_not_allowed", "request_timeout", "payload_too_large")
GUARDED = ("unauthorized", "rate_limited")  # the API-key and per-client limits; /health/* stays open for probes
HEADERS: dict[int, dict[str, Any]] = {
    405: {"Allow": {"description": "The methods this route takes.", "required": True, "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


def error_schema(types: list[str]) -> dict[str, Any]:
    """ErrorBody's JSON schema, inlined, with `error.type` limited to `types`."""
    schema = ErrorBody.model_json_schema()
    detail = schema.pop("$defs")["ErrorDetail"]
    detail["properties"]["type"]["enum"] = types
    detail["required"] = ["type", "message", "detail"]
    detail["additionalProperties"] = False
    schema["properties"]["error"] = detail
    schema["additionalProperties"] = False
    return schema


def error_responses(*types: str, guarded: bool = True) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for a route that can answer the error `types`, plus the errors every route can answer."""
    by_status: dict[int, list[str]] = {}
    for name in dict.fromkeys([*types, *ALWAYS, *(GUARDED if guarded else ())]):
        by_status.setdefault(ERROR_TABLE[name].status, []).append(name)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        kinds = sorted(by_status[status])
        response: dict[str, Any] = {
            "description": "; ".join(f"`{k}`: {ERROR_TABLE[k].when}" for k in kinds),
            "content": {"application/json": {"schema": error_schema(kinds)}},
        }
        if status in HEADERS:
            response["headers"] = copy.deepcopy(HEADERS[status])
        responses[status] = response
    return responses


IMAGE_ERRORS = error_responses(
    "malformed_body",
    "model_not_found",  # a version (X-Model-Version) that does not exist
    "invalid_image",
    "image_too_large",
    "unsupported_media_type",
    "invalid_input",
    "overloaded",
    "model_not_ready",
    "model_not_installed",
    "out_of_distribution",  # ?reject_ood=true and the image is not like the model's training images
)
JSON_TYPES = (
    "malformed_body",
    "model_not_found",
    "unsupported_media_type",
    "invalid_input",
    "overloaded",
    "model_not_ready",
    "model_not_installed",
)
JSON_ERRORS = error_responses(*JSON_TYPES)
SENTIMENT_ERRORS = error_responses(*JSON_TYPES, "out_of_distribution")  # "reject_ood": true, and a text is flagged
# The request body of the routes that take an uploaded image (app/http/uploads.py), for their `openapi_extra=`.
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,  # another field is a 422 (a misspelt option must not pass)
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The image file."}},
                },
                "encoding": {"file": {"contentType": "image/*, application/octet-stream"}},
            },
            "image/*": {"schema": {"type": "string", "format": "binary", "description": "The image file as the body."}},
        },
    }
}


def request_bodies(base: type[RequestBody]) -> list[type[RequestBody]]:
    """Every request body class (the families' included: importing the app has imported them)."""
    found = []
    for sub in base.__subclasses__():
        found += [sub, *request_bodies(sub)]
    return found


def constrain(doc: dict[str, Any], settings: Settings, registry: ModelRegistry) -> dict[str, Any]:
    """Add this app's Settings- and model-dependent limits to FastAPI's generated document (a copy)."""
    doc = copy.deepcopy(doc)
    schemas = doc.get("components", {}).get("schemas", {})
    ready = {name: r.runtime for name, r in registry.records.items() if r.state is State.READY and r.runtime}
    for body in request_bodies(RequestBody):
        if body.__name__ in schemas:  # each body states its own served limits (RequestBody.served_schema)
            schemas[body.__name__] = body.served_schema(schemas[body.__name__], settings, ready)
    # FastAPI documents its own 422 body (HTTPValidationError) for routes with parameters; the service never sends
    # it (app/http/api/errors.py answers every validation error with the error body), so routes list their own 422.
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            response = operation.get("responses", {}).get("422", {})
            if "HTTPValidationError" in str(response.get("content", "")):
                del operation["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


def install_openapi(app: FastAPI) -> None:
    """Serve `constrain(FastAPI's document)`; cached once the registry has loaded (the window is known then)."""
    generate = app.openapi  # FastAPI's own, which caches the generated document in app.openapi_schema
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "doc" in cache:
            return cache["doc"]
        registry: ModelRegistry = app.state.registry
        loaded = registry.loaded.is_set()
        doc = constrain(generate(), app.state.settings, registry)
        if loaded:
            cache["doc"] = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
