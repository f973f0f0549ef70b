"""POST /predict/sentiment: positive/negative sentiment of English text, by the LSTM or (when installed) DistilBERT.

Limits are Settings: max_texts texts per request, max_text_chars characters per text.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.families.ood import refusing
from app.families.sentiment import SentimentRequest, SentimentResponse, validate_texts
from app.families.tasks import SENTIMENT
from app.http.api.deps import JSON_BODY, ServingDep, VersionHeader
from app.http.api.openapi import SENTIMENT_ERRORS

router = APIRouter(tags=["predict"])


@router.post(SENTIMENT.path, response_model=SENTIMENT.response, responses=SENTIMENT_ERRORS, dependencies=JSON_BODY)
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
    runtime = await serving.runtime(SENTIMENT, body.model, version)
    answer = await serving.serve(runtime, texts)
    if isinstance(answer, SentimentResponse):
        where = ["text"] if body.text is not None else [f"texts[{i}]" for i in range(len(texts))]
        refusing(answer.results, body.reject_ood, where)
    return answer
