"""What the sentiment families share: the request and response of POST /predict/sentiment, the texts' checks,
and `SentimentRuntime`, whose request is the list of texts and whose output is one SentimentResult per text."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.errors import InvalidInput
from app.families.ood import Gate, OodFields, Verdict, temperature
from app.families.runtime import Runtime
from app.families.text_checks import code_share, read_vocabulary, symbol_share, unknown_share
from app.schemas import ModelRef, RequestBody, replace_lone_surrogates


class SentimentRequest(RequestBody):
    """Exactly one of `text` and `texts`; `model` defaults to the best loaded sentiment model."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="One text to classify.", examples=["A moving, beautifully shot film."])
    texts: list[str] | None = Field(None, fail_fast=True, description="Several texts, classified as one batch.")
    model: str | None = Field(
        None, description='"minilm", "distilbert" or "lstm"; default: the first of them that is ready.'
    )
    reject_ood: bool = Field(
        False,
        description="true: answer 422 out_of_distribution instead of results when a text does not look like what "
        "the model was trained on (English film reviews): another language, random letters, code.",
    )

    @classmethod
    def served_schema(cls, schema: dict[str, Any], settings: Settings, ready: Mapping[str, Any]) -> dict[str, Any]:
        """Exactly one of `text` and `texts` (a oneOf of two closed objects: an unknown field, or both, is a 422), with
        the Settings' text limits and the sentiment models by name."""
        fields = schema["properties"]
        model = {
            "enum": [*sentiment_models(), None],
            "description": fields["model"].get("description", "") + " A known model that is not installed answers 503.",
        }
        others = {name: field for name, field in fields.items() if name not in ("text", "texts", "model")}
        examples = {key: value for key, value in fields["text"].items() if key == "examples"}
        one = {"text": text_schema(settings.max_text_chars, fields["text"].get("description", ""), **examples)}
        texts = {
            "type": "array",
            "minItems": 1,
            "maxItems": settings.max_texts,
            "items": text_schema(settings.max_text_chars, "One text."),
            "description": f"{fields['texts'].get('description', '')} 1 to {settings.max_texts} texts "
            "(DEEPSERVE_MAX_TEXTS).",
        }
        closed = {"type": "object", "additionalProperties": False}
        return {
            "title": schema.get("title", cls.__name__),
            "description": schema.get("description", ""),
            "oneOf": [
                {"title": "One text", **closed, "required": ["text"], "properties": {**one, "model": model, **others}},
                {"title": "Several texts", **closed, "required": ["texts"],
                 "properties": {"texts": texts, "model": model, **others}},
            ],
        }  # fmt: skip


# A character that is not whitespace by Python's str.isspace() (what the service strips) nor by ECMA-262's \s.
NON_BLANK = r"[^\s\x1c-\x1f\x85]"


def text_schema(max_chars: int, description: str, **extra: Any) -> dict[str, Any]:
    """The JSON schema of one text the service takes: not blank, at most `max_chars` characters."""
    return {
        **extra,
        "type": "string",
        "minLength": 1,
        "maxLength": max_chars,
        "pattern": NON_BLANK,
        "description": f"{description} Not blank; at most {max_chars} characters (DEEPSERVE_MAX_TEXT_CHARS).",
    }


def sentiment_models() -> list[str]:
    """The sentiment models by name (app/families/tasks.py declares the task, and imports this module first)."""
    from app.families.tasks import SENTIMENT, models

    return sorted(models(SENTIMENT))


class SentimentResult(OodFields):
    label: Literal["POSITIVE", "NEGATIVE"]
    score: float = Field(description="Probability that the text is positive, 0-1 (label is POSITIVE at >= 0.5).")
    truncated: bool = Field(
        description="The text was longer than the model reads, so only part of it was classified: the LSTM keeps "
        "its last max_length words, MiniLM and DistilBERT their first and last word pieces (GET /models says how "
        "many)."
    )

    @classmethod
    def of(cls, positive: float, truncated: bool, verdict: Verdict | None = None) -> SentimentResult:
        fields = verdict.fields() if verdict is not None else {}
        return cls(label="POSITIVE" if positive >= 0.5 else "NEGATIVE", score=positive, truncated=truncated, **fields)


class SentimentResponse(BaseModel):
    results: list[SentimentResult] = Field(description="One result per input text, in order (one for `text`).")
    model: ModelRef


def validate_texts(body: SentimentRequest, settings: Settings) -> list[str]:
    """The request's texts: exactly one of text/texts, at most settings.max_texts, none blank or over
    settings.max_text_chars characters (422 otherwise), lone surrogates replaced (every model can read them)."""
    if (body.text is None) == (body.texts is None):
        raise InvalidInput('Send exactly one of "text" (a string) and "texts" (a list of strings).')
    texts = [body.text] if body.text is not None else body.texts
    assert texts is not None
    field = "text" if body.text is not None else "texts"
    if not texts:
        raise InvalidInput('"texts" is empty; send at least one text.', {"field": field})
    if len(texts) > settings.max_texts:
        raise InvalidInput(
            f'"texts" has {len(texts)} texts; send at most {settings.max_texts} per request.',
            {"field": field, "count": len(texts), "max_texts": settings.max_texts},
        )
    for i, text in enumerate(texts):
        where = "text" if field == "text" else f"texts[{i}]"
        if not text.strip():
            raise InvalidInput(f"{where} is empty or only whitespace.", {"field": field, "index": i})
        if len(text) > settings.max_text_chars:
            raise InvalidInput(
                f"{where} has {len(text)} characters; the limit is {settings.max_text_chars} characters per text.",
                {"field": field, "index": i, "chars": len(text), "max_chars": settings.max_text_chars},
            )
    return [replace_lone_surrogates(text) for text in texts]


def temper_binary(positive: np.ndarray, t: float, bias: float = 0.0) -> np.ndarray:
    """P(positive) after temperature scaling: softmax(logits / t) of two classes, from their probabilities; with
    `bias`, sigmoid(logit / t + bias) (Platt scaling: a model that leans to one class is moved back)."""
    if t == 1.0 and bias == 0.0:
        return positive
    p = np.clip(positive.astype(np.float64), 0.0, 1.0)
    up, down = np.power(p, 1.0 / t) * np.exp(bias), np.power(1.0 - p, 1.0 / t)
    return up / (up + down)


def calibration_bias(metrics: Mapping[str, Any]) -> float:
    """The artifact's fitted bias (temper_binary; 0.0 when it has none)."""
    spec = metrics.get("calibration")
    value = spec.get("bias") if isinstance(spec, Mapping) else None
    return float(value) if isinstance(value, (int, float)) else 0.0


class SentimentRuntime(Runtime[list[str], str, SentimentResult]):
    """A sentiment model: the request is its validated texts, each one model input. `results` turns the model's
    P(positive) into answers: calibrated, and checked against the artifact's thresholds (app/families/ood.py)."""

    @cached_property
    def gate(self) -> Gate | None:
        return Gate.from_metrics(self.entry.metrics)

    @cached_property
    def temperature(self) -> float:
        return temperature(self.entry.metrics)

    @cached_property
    def bias(self) -> float:
        return calibration_bias(self.entry.metrics)

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """The English words of the training reviews (the artifact's `ood` file, one a line)."""
        if "ood" not in self.entry.files:
            return frozenset()
        with self.file("ood").open(encoding="utf-8") as lines:
            return read_vocabulary(lines)

    def results(self, texts: list[str], positive: np.ndarray, truncated: list[bool]) -> list[SentimentResult]:
        scores = temper_binary(np.asarray(positive), self.temperature, self.bias)
        verdicts = self.judge(texts)
        return [SentimentResult.of(float(p), cut, v) for p, cut, v in zip(scores, truncated, verdicts, strict=True)]

    def judge(self, texts: list[str]) -> list[Verdict]:
        if self.gate is None:
            return [Verdict()] * len(texts)
        vocabulary = self.vocabulary
        return self.gate.verdicts(
            {
                "language": np.array([unknown_share(text, vocabulary) for text in texts]),
                "symbols": np.array([symbol_share(text) for text in texts]),
                "code": np.array([code_share(text) for text in texts]),
            }
        )

    def decode(self, request: list[str]) -> list[str]:
        return request

    def encode(self, request: list[str], outputs: list[SentimentResult]) -> SentimentResponse:
        return SentimentResponse(results=outputs, model=self.ref())
