"""The OpenAPI document states what the service really enforces, so a schema-valid request is never refused for a
reason the schema does not say.

Two parts:
- `error_responses(...)`: a route's `responses=`, generated from `ERROR_TABLE`: every status it can answer, each
  with the error body whose `type` is one of the documented types for that status, and the `Allow` (405) and
  `Retry-After` (429) headers. The errors any route can answer (500, 405, 408, 413, and 401/429 from the auth and
  rate limits outside /health) are always added.
- `install_openapi(app)`: the app's `openapi()` adds the limits only the running app knows: the sentiment text
  limits from its Settings, and the anomaly series' minimum length from the window of the model it serves (known
  once the registry has loaded; until then the document is rebuilt on each request).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from app.config import Settings
from app.core.registry import ModelRegistry, State
from app.errors import ERROR_TABLE
from app.families.anomaly import series
from app.families.anomaly.runtime import AnomalyRuntime
from app.families.explain_text import MAX_CHARS as EXPLAIN_MAX_CHARS
from app.families.tasks import SENTIMENT, models
from app.schemas import ErrorBody

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
SENTIMENT_MODELS = sorted(models(SENTIMENT))
# A character that is not whitespace by Python's str.isspace() (what the service strips) nor by ECMA-262's \s.
NON_BLANK = r"[^\s\x1c-\x1f\x85]"


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


def _text_schema(settings: Settings, description: str, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "type": "string",
        "minLength": 1,
        "maxLength": settings.max_text_chars,
        "pattern": NON_BLANK,
        "description": f"{description} Not blank; at most {settings.max_text_chars} characters "
        "(DEEPSERVE_MAX_TEXT_CHARS).",
    }


CLOSED = {"additionalProperties": False}


def sentiment_request_schema(settings: Settings, generated: dict[str, Any]) -> dict[str, Any]:
    """Exactly one of `text` and `texts` (a oneOf of two closed objects), with this app's limits."""
    fields = generated["properties"]
    described = {name: field.get("description", "") for name, field in fields.items()}
    examples = {key: value for key, value in fields["text"].items() if key == "examples"}
    model = {
        "enum": [*SENTIMENT_MODELS, None],
        "description": described["model"] + " A known model that is not installed answers 503.",
    }
    one = {"text": _text_schema(settings, described["text"], **examples), "model": model}
    texts = {
        "type": "array",
        "minItems": 1,
        "maxItems": settings.max_texts,
        "items": _text_schema(settings, "One text."),
        "description": f"{described['texts']} 1 to {settings.max_texts} texts (DEEPSERVE_MAX_TEXTS).",
    }
    several = {"texts": texts, "model": model}
    return {
        "title": generated.get("title", "SentimentRequest"),
        "description": generated.get("description", ""),
        "oneOf": [  # closed objects: an unknown field, or both text and texts, is a 422
            {"title": "One text", "type": "object", "required": ["text"], "properties": one, **CLOSED},
            {"title": "Several texts", "type": "object", "required": ["texts"], "properties": several, **CLOSED},
        ],
    }


def explain_text_schema(settings: Settings, generated: dict[str, Any]) -> dict[str, Any]:
    """One text, at most the explanations' character limit, and an optional sentiment model."""
    fields = generated["properties"]
    limits = settings.model_copy(update={"max_text_chars": min(settings.max_text_chars, EXPLAIN_MAX_CHARS)})
    examples = {key: value for key, value in fields["text"].items() if key == "examples"}
    model = {"enum": [*SENTIMENT_MODELS, None], "description": fields["model"].get("description", "")}
    return {
        **{k: v for k, v in generated.items() if k != "properties"},
        "properties": {"text": _text_schema(limits, fields["text"].get("description", ""), **examples), "model": model},
        **CLOSED,
    }


def anomaly_window(registry: ModelRegistry) -> int | None:
    record = registry.records.get("anomaly")
    if record is None or record.state is not State.READY or not isinstance(record.runtime, AnomalyRuntime):
        return None
    return record.runtime.window


def constrain_anomaly_request(schema: dict[str, Any], window: int | None) -> None:
    """The fewest values each method and mode needs, as three exclusive variants (JSON Schema's oneOf)."""
    props = schema["properties"]
    values = props["values"]
    if window is None:
        model_min, model_text = (
            1,
            (
                "the served model's window; the model is not loaded, so its window is not known here (the route "
                "answers 503 meanwhile)"
            ),
        )
    else:
        model_min, model_text = window, f"one window of the served model: {window} values"
    causal, non_causal = series.min_length(causal=True), series.min_length(causal=False)
    values["minItems"] = min(model_min, causal)
    values["description"] += (
        f" At least {causal} present (non-null) values (nearest_context, causal), {non_causal} (nearest_context, "
        f"non_causal) or {model_text}, none null (autoencoder)."
    )

    def variant(title: str, values: dict[str, Any], method: dict[str, Any], mode: dict[str, Any], required: list[str]):
        return {
            "title": title,
            "required": ["values", *required],
            "properties": {"values": values, "method": method, "mode": mode},
        }

    per_series = {"enum": ["nearest_context"]}
    schema["oneOf"] = [
        variant(
            "Autoencoder",
            {"minItems": model_min, "items": {"type": "number"}},
            {"const": "autoencoder"},
            {},
            ["method"],
        ),
        variant("Causal", {"minItems": causal}, per_series, {"enum": ["causal"]}, []),
        variant("Non-causal", {"minItems": non_causal}, per_series, {"const": "non_causal"}, ["mode"]),
    ]
    props["timestamps"]["description"] += (
        " When given, exactly one per value and never going backwards (otherwise 422 invalid_input; JSON Schema "
        "cannot say either)."
    )


def constrain(doc: dict[str, Any], settings: Settings, registry: ModelRegistry) -> dict[str, Any]:
    """Add this app's Settings- and model-dependent limits to FastAPI's generated document (a copy)."""
    doc = copy.deepcopy(doc)
    schemas = doc.get("components", {}).get("schemas", {})
    if "SentimentRequest" in schemas:
        schemas["SentimentRequest"] = sentiment_request_schema(settings, schemas["SentimentRequest"])
    if "ExplainTextRequest" in schemas:
        schemas["ExplainTextRequest"] = explain_text_schema(settings, schemas["ExplainTextRequest"])
    if "AnomalyRequest" in schemas:
        constrain_anomaly_request(schemas["AnomalyRequest"], anomaly_window(registry))
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
