"""Word attributions for any sentiment model, by occlusion: each word the user wrote is left out in turn and the
text scored again through the served model (the LSTM's ONNX, DistilBERT's, a transformer's): the attribution is
how much P(positive) falls without it. Exact for what it measures, and model-agnostic: a new sentiment family
(a transformer) is explained by the same code with no export of its own.

Words are runs of letters, digits and apostrophes in the text as written (with their character offsets, so a
page can highlight them), never word pieces. A text without any (only punctuation) gets its score and no words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from app.families.runtime import Runtime
from app.families.sentiment import SentimentResult, SentimentRuntime
from app.schemas import ModelRef

WORD = re.compile(r"[\w'\u2019]+")
MAX_CHARS = 1000  # characters per explained text (at most ~500 words: one model input per word)
CHUNK = 32  # texts per model call (the LSTM's memory estimate holds for 32)


class WordAttribution(BaseModel):
    word: str
    start: int = Field(description="Offset of the word's first character in the text.")
    end: int = Field(description="Offset just after its last character.")
    attribution: float = Field(
        description="P(positive) with the word minus P(positive) without it: > 0 pushes towards POSITIVE."
    )


class TextExplanation(BaseModel):
    label: str
    score: float = Field(description="P(positive) of the whole text.")
    words: list[WordAttribution]
    method: str = Field("occlusion", description="How attributions were computed: leave-one-word-out.")
    model: ModelRef


@dataclass(frozen=True)
class Explained:
    result: SentimentResult
    words: list[WordAttribution]


def words_of(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def without(text: str, start: int, end: int) -> str:
    """The text with text[start:end] left out (one of the spaces around it too)."""
    before, after = text[:start], text[end:]
    return before.rstrip(" ") + (" " if before.rstrip(" ") and after.lstrip(" ") else "") + after.lstrip(" ")


class OcclusionExplainer(Runtime[str, str, Explained]):
    kind = "occlusion"
    batchable = False

    def __init__(self, base: SentimentRuntime) -> None:
        super().__init__(base.entry, base.artifact_dir, base.settings)
        self.base = base

    def load(self) -> None:
        pass  # the base model is loaded

    def warmup(self) -> None:
        pass

    def cost(self, request: str) -> int:
        return self.base.cost([request] * CHUNK)  # one chunk in flight at a time

    def decode(self, request: str) -> list[str]:
        return [request]

    def scores(self, texts: list[str]) -> list[SentimentResult]:
        results: list[SentimentResult] = []
        for start in range(0, len(texts), CHUNK):
            results += self.base.predict(texts[start : start + CHUNK])
        return results

    def predict(self, batch: list[str]) -> list[Explained]:
        out = []
        for text in batch:
            words = words_of(text)
            full, *rest = self.scores([text, *(without(text, start, end) for _, start, end in words)])
            out.append(
                Explained(
                    full,
                    [
                        WordAttribution(word=w, start=s, end=e, attribution=round(full.score - r.score, 5))
                        for (w, s, e), r in zip(words, rest, strict=True)
                    ],
                )
            )
        return out

    def encode(self, request: str, outputs: list[Explained]) -> TextExplanation:
        [out] = outputs
        return TextExplanation(label=out.result.label, score=out.result.score, words=out.words, model=self.ref())

    def input_description(self) -> dict[str, Any]:
        return self.base.input_description()
