"""POST /predict/sentiment: positive/negative sentiment of English text, by the LSTM or (when installed) DistilBERT.

Limits are Settings: max_texts texts per request, max_text_chars characters per text.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import InferenceDep, LimiterDep, RegistryDep, SettingsDep, require_json
from app.api.openapi import error_responses
from app.config import Settings
from app.costs import text_cost
from app.errors import InvalidInput
from app.schemas import ModelRef
from app.sentiment_schemas import SentimentRequest, SentimentResponse, SentimentResult

router = APIRouter(prefix="/predict", tags=["predict"])

TASK = "text-classification/sentiment"


def validate_texts(body: SentimentRequest, settings: Settings) -> list[str]:
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
    return texts


ERRORS = error_responses(
    "malformed_body",
    "model_not_found",
    "unsupported_media_type",
    "invalid_input",
    "overloaded",
    "model_not_ready",
    "model_not_installed",
)


@router.post("/sentiment", response_model=SentimentResponse, responses=ERRORS, dependencies=[Depends(require_json)])
async def predict_sentiment(
    body: SentimentRequest, registry: RegistryDep, settings: SettingsDep, limiter: LimiterDep, inference: InferenceDep
) -> SentimentResponse:
    """Classify English text as POSITIVE or NEGATIVE.

    Request (application/json): `{"text": "..."}` or `{"texts": ["...", ...]}` (exactly one; at most
    DEEPSERVE_MAX_TEXTS (32) texts of at most DEEPSERVE_MAX_TEXT_CHARS (20,000) characters, none empty or blank),
    and optionally `"model": "lstm" | "distilbert"` (default: distilbert when it is ready, else lstm).

    Response, the same for both forms: `{"results": [{"label": "POSITIVE" | "NEGATIVE", "score": P(positive),
    "truncated": bool}, ...], "model": {"name": ..., "version": ...}}` with one result per text, in order;
    `truncated` says the text was longer than the model reads and only part of it was classified.

    Errors (shared body): 422 invalid_input (invalid JSON, unknown field, both or neither of text/texts, empty,
    blank or too long text, too many texts, a non-sentiment model), 415 non-JSON content type, 404 unknown
    model, 503 model not installed or not ready, 429 overloaded, 413 body over the upload limit.
    """
    texts = validate_texts(body, settings)
    runtime = registry.for_task(TASK, body.model)
    with limiter.slot(text_cost(runtime, texts)):
        outputs = await inference(runtime, texts)
    return SentimentResponse(
        results=[SentimentResult(**out) for out in outputs],
        model=ModelRef(name=runtime.entry.name, version=runtime.entry.version),
    )
