"""Word attributions for any sentiment model, by occlusion: each word the user wrote is left out in turn and the
text scored again through the served model (the LSTM's ONNX, DistilBERT's, a transformer's): the attribution is
how much P(positive) falls without it. Exact for what it measures, and model-agnostic: a new sentiment family
(a transformer) is explained by the same code with no export of its own.

Words are runs of letters, digits and apostrophes in the text as written (with their character offsets, so a
page can highlight them), never word pieces. A text without any (only punctuation) gets its score and no words.

Cost is bounded whatever the text: at most MAX_OCCLUSIONS texts are left out, so one explanation is at most
MAX_OCCLUSIONS + 1 model inputs of at most the explained length. A longer text is left out in MAX_OCCLUSIONS runs
of consecutive words, each word showing its run's attribution (`words_per_run` says how many); before, a
1,000-character text of 500 one-letter words was 501 inputs of 500 tokens through MiniLM (56-228 s of CPU). The
executor (app/core/inference.py) runs the inputs in model calls of CALL_INPUTS and stops between two calls when its
client has left.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.families.ood import OodFields
from app.families.runtime import Runtime
from app.families.sentiment import SentimentResult, SentimentRuntime, sentiment_models, text_schema
from app.schemas import ModelRef, RequestBody

WORD = re.compile(r"[\w'\u2019]+")
MAX_CHARS = 1000  # characters per explained text
MAX_OCCLUSIONS = 63  # texts left out per explanation: with the whole text, at most 64 model inputs
CALL_INPUTS = 8  # texts per model call: a client that leaves stops its explanation within one call of 8


class ExplainTextRequest(RequestBody):  # POST /explain/sentiment's body
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        description="One text; each word is left out in turn (past 63 words, runs of words: at most 64 model inputs).",
        examples=["Not bad at all."],
    )
    model: str | None = Field(None, description="A sentiment model (lstm, distilbert, ...); default as for predict.")

    @classmethod
    def served_schema(cls, schema: dict[str, Any], settings: Settings, ready: Mapping[str, Any]) -> dict[str, Any]:
        """One text, at most the explanations' character limit (or the Settings', if lower), and a sentiment model."""
        fields = schema["properties"]
        examples = {key: value for key, value in fields["text"].items() if key == "examples"}
        text = text_schema(min(settings.max_text_chars, MAX_CHARS), fields["text"].get("description", ""), **examples)
        model = {"enum": [*sentiment_models(), None], "description": fields["model"].get("description", "")}
        return {
            **{k: v for k, v in schema.items() if k != "properties"},
            "properties": {"text": text, "model": model},
            "additionalProperties": False,
        }


class WordAttribution(BaseModel):
    word: str
    start: int = Field(description="Offset of the word's first character in the text.")
    end: int = Field(description="Offset just after its last character.")
    attribution: float = Field(
        description="P(positive) with the word minus P(positive) without it: > 0 pushes towards POSITIVE."
    )


class TextExplanation(OodFields):
    label: str
    score: float = Field(description="P(positive) of the whole text.")
    words: list[WordAttribution]
    method: str = Field("occlusion", description="How attributions were computed: leave-one-word-out.")
    words_per_run: int = Field(
        1,
        description=f"Words left out together: 1 (each word on its own) for texts of up to {MAX_OCCLUSIONS} words; "
        f"a longer text is left out in {MAX_OCCLUSIONS} runs of this many consecutive words (the last may be "
        "shorter), each word showing its run's attribution.",
    )
    model: ModelRef


@dataclass(frozen=True)
class ExplainedText:
    result: SentimentResult
    words: list[WordAttribution]
    words_per_run: int = 1


@dataclass(frozen=True)
class Occlusions:
    """What one explanation scores: `texts` is the text, then the text without each run of `words` (index ranges
    [a, b) into `words`, in order)."""

    words: list[tuple[str, int, int]]
    runs: list[tuple[int, int]]
    texts: list[str]
    words_per_run: int

    @classmethod
    def of(cls, text: str) -> Occlusions:
        words = words_of(text)
        per_run = max(1, math.ceil(len(words) / MAX_OCCLUSIONS))
        runs = [(a, min(a + per_run, len(words))) for a in range(0, len(words), per_run)]
        texts = [text, *(without(text, words[a][1], words[b - 1][2]) for a, b in runs)]
        return cls(words, runs, texts, per_run)

    def explained(self, results: list[SentimentResult]) -> ExplainedText:
        """The attributions, from the scores of `texts` in order."""
        full, *rest = results
        attributions = [
            WordAttribution(word=w, start=s, end=e, attribution=round(full.score - r.score, 5))
            for (a, b), r in zip(self.runs, rest, strict=True)
            for w, s, e in self.words[a:b]
        ]
        return ExplainedText(full, attributions, self.words_per_run)


def words_of(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def without(text: str, start: int, end: int) -> str:
    """The text with text[start:end] left out (one of the spaces around it too)."""
    before, after = text[:start], text[end:]
    return before.rstrip(" ") + (" " if before.rstrip(" ") and after.lstrip(" ") else "") + after.lstrip(" ")


class OcclusionExplainer(Runtime[str, str, Any]):
    """Served as any runtime (app/core/serving.py `explain`): `decode` makes the texts its sentiment model scores,
    which go through that model (`model()`: batched and observed as its own calls) in calls of CALL_INPUTS, and
    `encode` turns their scores into the explanation. `predict` explains texts in one go (tests, evaluation)."""

    kind = "occlusion"
    batchable = False
    call_inputs = CALL_INPUTS

    def __init__(self, base: SentimentRuntime) -> None:
        super().__init__(base.entry, base.artifact_dir, base.settings)
        self.base = base

    def load(self) -> None:
        pass  # the base model is loaded

    def warmup(self) -> None:
        pass

    def cost(self, request: str) -> int:
        return self.base.cost([request] * CALL_INPUTS)  # one call in flight at a time

    def model(self) -> SentimentRuntime:
        return self.base

    def decode(self, request: str) -> list[str]:
        """The texts the model scores: the text, then the text without each run of its words."""
        return Occlusions.of(request).texts

    def scores(self, texts: list[str]) -> list[SentimentResult]:
        results: list[SentimentResult] = []
        for start in range(0, len(texts), CALL_INPUTS):
            results += self.base.predict(texts[start : start + CALL_INPUTS])
        return results

    def predict(self, batch: list[str]) -> list[ExplainedText]:
        """Each text explained here, in one go (served, its texts go through the model in calls: `call_inputs`)."""
        return [occlusions.explained(self.scores(occlusions.texts)) for occlusions in map(Occlusions.of, batch)]

    def encode(self, request: str, outputs: list[SentimentResult]) -> TextExplanation:
        """The explanation of `request` from its model's scores of `decode(request)`, in order."""
        out = Occlusions.of(request).explained(outputs)
        return TextExplanation(
            label=out.result.label,
            score=out.result.score,
            words=out.words,
            words_per_run=out.words_per_run,
            model=self.ref(),
            in_distribution=out.result.in_distribution,  # of the whole text, as /predict/sentiment answers it
            ood_score=out.result.ood_score,
            ood_reason=out.result.ood_reason,
        )

    def input_description(self) -> dict[str, Any]:
        return self.base.input_description()
