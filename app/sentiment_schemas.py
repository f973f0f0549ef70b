"""Request and response bodies of POST /predict/sentiment, shared by the sentiment models (minilm, distilbert, lstm)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas import ModelRef


class SentimentRequest(BaseModel):
    """Exactly one of `text` and `texts`; `model` defaults to the best loaded sentiment model."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="One text to classify.", examples=["A moving, beautifully shot film."])
    texts: list[str] | None = Field(None, description="Several texts, classified as one batch.")
    model: str | None = Field(
        None, description='"minilm", "distilbert" or "lstm"; default: the first of them that is ready.'
    )


class SentimentResult(BaseModel):
    label: Literal["POSITIVE", "NEGATIVE"]
    score: float = Field(description="Probability that the text is positive, 0-1 (label is POSITIVE at >= 0.5).")
    truncated: bool = Field(
        description="The text was longer than the model reads, so only part of it was classified: the LSTM keeps "
        "its last max_length words, MiniLM and DistilBERT their first and last word pieces (GET /models says how "
        "many)."
    )


class SentimentResponse(BaseModel):
    results: list[SentimentResult] = Field(description="One result per input text, in order (one for `text`).")
    model: ModelRef
