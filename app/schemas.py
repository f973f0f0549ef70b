"""Request and response bodies shared by the routes, as pydantic models so the OpenAPI document shows them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, model_validator

MAX_UNKNOWN_FIELDS = 10  # more unknown fields than this in a body are one error, not one each
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins a pair into one character: any left is alone


def replace_lone_surrogates(text: str) -> str:
    """`text` with each lone surrogate (JSON's escape `"\\ud800"` makes one; it is no character) replaced by U+FFFD,
    as a UTF-8 decoder replaces what it cannot read: tokenizers refuse it (MiniLM: a 500) and no UTF-8 answer can
    echo it. One code point for one, so offsets into the text stay those of the text as sent."""
    return LONE_SURROGATE.sub("\ufffd", text)


# A request string that is echoed in an answer or tokenized (texts are replaced where they are checked, after
# their count: app/families/sentiment.py validate_texts).
UnicodeText = Annotated[str, AfterValidator(replace_lone_surrogates)]


class RequestBody(BaseModel):
    """The base of every JSON request body: its validation stops at the first errors, so that its work and its 422
    are bounded by the schema, not by what a client sends. pydantic otherwise reports every invalid element: a
    3.5 MB `{"texts": [1, 1, ...]}` made 1.75M errors, 26 s of one worker's time and a 162 MB answer. So every
    list field of a subclass is declared `Field(fail_fast=True)` (it stops at its first invalid element), and a
    body with more than MAX_UNKNOWN_FIELDS unknown fields is one error naming the first few (checked here,
    before any field is validated, for bodies that refuse unknown fields). tests/test_bad_inputs.py floods every
    JSON route's lists and fields."""

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        fields = cls.model_fields  # a property: read once
        if cls.model_config.get("extra") != "forbid" or not isinstance(data, dict):
            return data
        if len(data) <= len(fields) + MAX_UNKNOWN_FIELDS:
            return data  # pydantic reports each of at most MAX_UNKNOWN_FIELDS unknown fields itself
        unknown = [key for key in data if key not in fields]
        first = ", ".join(repr(str(key)[:40]) for key in unknown[:3])
        known = ", ".join(fields)
        raise ValueError(f"{len(unknown)} unknown fields ({first}, ...); this body takes only: {known}")

    @classmethod
    def served_schema(cls, schema: dict[str, Any], settings: Any, ready: Mapping[str, Any]) -> dict[str, Any]:
        """This body's JSON schema as the running service enforces it: FastAPI's generated `schema`, plus what only
        the running app knows (its `settings`: app/config.py's Settings; the `ready` models by name), so that a
        schema-valid request is never refused for a reason the schema does not say. app/http/api/openapi.py applies
        it to every request body in the document; a body with such limits overrides it."""
        return schema


class ModelRef(BaseModel):
    name: str
    version: str


class Fallback(BaseModel):
    """A model serving another version than the one the models folder asks for, because that one failed to load
    at start-up (app/core/registry.py); a reload of the wanted version (or a new promotion) ends it."""

    wanted: str | None = Field(description="The version promoted.json (else the newest) names; null when unreadable.")
    serving: str = Field(description="The version answering instead: the one promoted before it.")


class ModelInfo(BaseModel):
    name: str
    state: str
    version: str | None = None
    task: str | None = None
    endpoint: str | None = None
    message: str = ""
    install: str | None = None
    load_seconds: float | None = None
    input: dict[str, Any] | None = None
    metrics: dict[str, Any] = {}
    files: dict[str, str] = {}
    training_command: str | None = None
    fallback: Fallback | None = None
    default: bool = Field(False, description="this model answers its task's route when a request names no model")


class Health(BaseModel):
    status: str = Field(description="ready; degraded (ready, but a model serves a fallback version); not_ready")
    models: dict[str, str] = {}
    message: str = ""
    fallbacks: dict[str, Fallback] = Field({}, description="model -> the version it serves instead of the wanted one")


class ErrorDetail(BaseModel):
    type: str
    message: str
    detail: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail
