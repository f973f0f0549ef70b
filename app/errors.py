"""Every error the service returns: one exception per kind, each carrying its HTTP status, and the one table.

Framework-free (no FastAPI import): app/http/api/errors.py turns these into responses. Body, for every error:
{"error": {"type": <snake_case kind>, "message": <what went wrong and what to do>, "detail": <optional>}}

`ERROR_TABLE` is the single source of the error table in docs/errors.md (`python -m tools.docs` writes it; a test holds
the docs to it and drives a real request to every row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ServeError(Exception):
    status_code = 500
    type = "internal_error"
    when = "a bug; no client input should reach it (the log has the traceback, the body only the request id)"

    def __init__(self, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers = headers or {}


class MalformedBody(ServeError):
    status_code, type = 400, "malformed_body"
    when = (
        "the body cannot be parsed: invalid JSON or UTF-8, JSON nested too deep, a multipart body without a "
        "boundary or with a broken part, more than 8 form fields or 1 file, a form field over 1 MiB; "
        "a CORS preflight asking for an origin, method or header that is not allowed"
    )


class InvalidImage(ServeError):
    status_code, type = 400, "invalid_image"
    when = "corrupt, truncated, empty or non-image file, or an image whose pixels cannot be read (NaN, odd modes)"


class Unauthorized(ServeError):
    status_code, type = 401, "unauthorized"
    when = "API keys are configured and the request has no valid key (`Authorization: Bearer` or `X-API-Key`)"


class Forbidden(ServeError):
    status_code, type = 403, "forbidden"
    when = (
        "a route that changes what the service serves (`/admin/...`) called with a client key while admin keys "
        "(`DEEPSERVE_ADMIN_KEYS`) are configured, or, with none configured, from another host than the service's"
    )


class NotFound(ServeError):
    status_code, type = 404, "not_found"
    when = "unknown route"


class ModelNotFound(ServeError):
    status_code, type = 404, "model_not_found"
    when = "unknown model name (`detail.known` lists the known ones)"


class StreamNotFound(ServeError):
    status_code, type = 404, "stream_not_found"
    when = "an anomaly stream id that was never created or was deleted (`detail.series_id` names it)"


class MethodNotAllowed(ServeError):
    status_code, type = 405, "method_not_allowed"
    when = "e.g. `GET /predict/digit`; the `Allow` header lists the methods the route takes"


class RequestTimeout(ServeError):
    status_code, type = 408, "request_timeout"
    when = "the request body did not arrive within `DEEPSERVE_BODY_TIMEOUT_SECONDS` (a stalled upload)"


class PayloadTooLarge(ServeError):
    status_code, type = 413, "payload_too_large"
    when = (
        "body over `DEEPSERVE_MAX_UPLOAD_BYTES` (refused from Content-Length before reading, or while streaming), "
        "or a request whose estimated working memory alone is over `DEEPSERVE_MAX_INFLIGHT_MB`, or more points in one "
        "stream request than `DEEPSERVE_MAX_STREAM_POINTS` (a row of k channels is k), or more values (rows x "
        "channels) in one anomaly series than 20,000"
    )


class ImageTooLarge(ServeError):
    status_code, type = 413, "image_too_large"
    when = "decoded size over `DEEPSERVE_MAX_IMAGE_PIXELS` (decompression bombs), checked from the header"


class UnsupportedMediaType(ServeError):
    status_code, type = 415, "unsupported_media_type"
    when = "a content type the route does not take, or none (images: multipart or `image/*`; text and series: JSON)"


class InvalidInput(ServeError):
    status_code, type = 422, "invalid_input"
    when = "the body parsed but a value is invalid: missing `file` field, blank image, empty or too long text, ..."


class OutOfDistribution(ServeError):
    status_code, type = 422, "out_of_distribution"
    when = (
        "`reject_ood` was set (a query parameter, a body field, or a /v2 request's `parameters`) and the input "
        "does not look like what the model was trained on (`in_distribution` false: a photo sent to the digit "
        "model, text in another language); `detail.flagged` lists each flagged input with its `ood_score` and "
        "reason, and the message names the first"
    )


class ArtifactInvalid(ServeError):
    status_code, type = 422, "artifact_invalid"
    when = (
        "`POST /admin/models/{name}/reload`: the artifact on disk cannot be loaded (missing or corrupt files, an "
        "unknown runtime); the version already serving keeps serving"
    )


class PromotionRefused(ServeError):
    status_code, type = 409, "promotion_refused"
    when = (
        "`POST /admin/models/{name}/reload?version=N` (and `deepserve promote`): the version's headline metric is "
        "worse than the promoted version's (app/core/promotion.py's gate); `force=true` (`--force`) overrides"
    )


class Overloaded(ServeError):
    status_code, type = 429, "overloaded"
    when = "the service has no room for this request's work now; retry after `Retry-After` seconds"


class RateLimited(ServeError):
    status_code, type = 429, "rate_limited"
    when = (
        "this client (API key, or address without keys) is over `DEEPSERVE_RATE_LIMIT_PER_SECOND`; "
        "retry after `Retry-After` seconds"
    )


class TooManyStreams(ServeError):
    status_code, type = 429, "too_many_streams"
    when = (
        "a new anomaly stream while `DEEPSERVE_MAX_STREAMS` exist, or while this API key has "
        "`DEEPSERVE_MAX_STREAMS_PER_CLIENT` (`detail.limit` says which; a stream of k channels counts k); delete one "
        "(`DELETE /anomaly/streams/{id}`)"
    )


class ModelNotReady(ServeError):
    status_code, type = 503, "model_not_ready"
    when = "the model is loading, or failed to load (the message says how to train it; `detail.model` names it)"


class ModelNotInstalled(ServeError):
    status_code, type = 503, "model_not_installed"
    when = "no artifact for this known model (`detail.install` is the command; `detail.model` names it)"


class StorageUnavailable(ServeError):
    status_code, type = 503, "storage_unavailable"
    when = (
        "an anomaly stream route while the service cannot use its data folder (`DEEPSERVE_DATA_DIR`): full, "
        "read-only, not a folder, or its `anomaly_streams.sqlite3` unreadable or corrupt; the operator must fix the "
        "folder (`detail.reason` says what failed); other routes keep working"
    )


class ExplanationUnavailable(ServeError):
    status_code, type = 503, "explanation_unavailable"
    when = (
        "`POST /explain/...`: the served artifact has no explanation export (`detail.install` is the command that "
        "adds it); predictions still work"
    )


@dataclass(frozen=True)
class ErrorKind:
    type: str
    status: int
    when: str


def _kinds() -> list[type[ServeError]]:
    return [ServeError, *ServeError.__subclasses__()]


ERROR_TABLE: dict[str, ErrorKind] = {
    cls.type: ErrorKind(cls.type, cls.status_code, cls.when) for cls in sorted(_kinds(), key=lambda c: c.status_code)
}
ERROR_CLASSES: dict[str, type[ServeError]] = {cls.type: cls for cls in _kinds()}


def echo(value: object, limit: int = 64) -> str:
    """A client-sent value quoted in a message: shortened, and printable whatever bytes it holds."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def error_body(type_: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, "detail": detail}}


def markdown_table() -> str:
    """The documented error table (docs/errors.md), generated from ERROR_TABLE."""
    rows = ["| type | status | when |", "|---|---|---|"]
    rows += [f"| `{k.type}` | {k.status} | {k.when} |" for k in ERROR_TABLE.values()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
