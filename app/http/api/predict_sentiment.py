"""POST /predict/sentiment: positive/negative sentiment of English text, by the LSTM or (when installed) DistilBERT.

Limits are Settings: max_texts texts per request, max_text_chars characters per text.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.families.ood import refuse_flagged
from app.families.sentiment import SentimentRequest, SentimentResponse, SentimentRuntime, validate_texts
from app.http.api.deps import ServingDep, VersionHeader, require_json
from app.http.api.openapi import error_responses

router = APIRouter(prefix="/predict", tags=["predict"])

TASK = "text-classification/sentiment"


ERRORS = error_responses(
    "malformed_body",
    "model_not_found",
    "unsupported_media_type",
    "invalid_input",
    "overloaded",
    "model_not_ready",
    "model_not_installed",
    "out_of_distribution",  # "reject_ood": true and a text is not like the training reviews
)


@router.post("/sentiment", response_model=SentimentResponse, responses=ERRORS, dependencies=[Depends(require_json)])
async def predict_sentiment(body: SentimentRequest, serving: ServingDep, version: VersionHeader = None) -> BaseModel:
    """Classify English text as POSITIVE or NEGATIVE.

    Request (application/json): `{"text": "..."}` or `{"texts": ["...", ...]}` (exactly one; at most
    DEEPSERVE_MAX_TEXTS (32) texts of at most DEEPSERVE_MAX_TEXT_CHARS (20,000) characters, none empty or blank),
    and optionally `"model": "lstm" | "distilbert"` (default: distilbert when it is ready, else lstm).

    Response, the same for both forms: `{"results": [{"label": "POSITIVE" | "NEGATIVE", "score": P(positive),
    "truncated": bool}, ...], "model": {"name": ..., "version": ...}}` with one result per text, in order;
    `truncated` says the text was longer than the model reads and only part of it was classified;
    `in_distribution` / `ood_score` / `ood_reason` whether the text looks like an English review at all
    (`"reject_ood": true` makes a flagged text a 422 out_of_distribution).

    Errors (shared body): 422 invalid_input (invalid JSON, unknown field, both or neither of text/texts, empty,
    blank or too long text, too many texts, a non-sentiment model), 415 non-JSON content type, 404 unknown
    model, 503 model not installed or not ready, 429 overloaded, 413 body over the upload limit.
    """
    texts = validate_texts(body, serving.settings)
    runtime = await serving.registry.pin(serving.registry.for_task(TASK, body.model, SentimentRuntime), version)
    answer = await serving.inference.serve(runtime, texts, serving.limiter)
    if body.reject_ood and isinstance(answer, SentimentResponse):
        refuse_flagged(
            answer.results, ["text"] if body.text is not None else [f"texts[{i}]" for i in range(len(texts))]
        )
    return answer
