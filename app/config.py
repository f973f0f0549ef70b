"""One Settings object for the whole service; every field is an environment variable with the DEEPSERVE_ prefix."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def cpu_cores() -> int:
    """The CPU cores this process may run on (not a container's CPU quota, which the settings can give instead)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEEPSERVE_", env_file=".env", extra="ignore")

    models_dir: Path = Field(Path("models"), description="Folder of the artifacts: <name>/<version>/model.json.")
    models: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Comma-separated model names this deployment must serve; readiness waits for all of them. "
        "Default: every model in the manifest.",
    )
    max_upload_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Largest request body accepted (413 above).")
    max_image_pixels: int = Field(4096 * 4096, gt=0, description="Largest decoded image, width x height (413).")
    max_concurrent_requests: int = Field(
        64, gt=0, description="Predictions in flight before new ones get 429 at once instead of queueing."
    )
    max_concurrent_explanations: int = Field(
        4,
        gt=0,
        description="Explanations (POST /explain/...) in flight before new ones get 429; each also counts as a "
        "prediction and is charged to the memory budget. An explanation costs several predictions' compute.",
    )
    # Load bounds (app/core/limiter.py, app/core/costs.py, app/http/middleware/body_limit.py).
    max_inflight_mb: int = Field(
        768,
        gt=0,
        description="Estimated working memory (MB) of all predictions in flight; what does not fit gets 429, "
        "a request that alone needs more gets 413.",
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest a request body may take to arrive, from its first byte read (408 after)."
    )
    max_texts: int = Field(32, gt=0, description="Most texts in one POST /predict/sentiment request (422 above).")
    max_text_chars: int = Field(
        20000, gt=0, description="Longest text accepted, in characters (422 above; the longest IMDb review has 13,700)."
    )
    inference_threads: int = Field(
        0,
        ge=0,
        description="Threads per ONNX Runtime session; 0 lets it choose (1 for the tiny digit CNN; a micro-batched "
        "transformer: cores // workers).",
    )
    inference_workers: int = Field(
        8,
        ge=1,
        description="Threads in the pool that runs the text and series models (and every explanation); requests "
        "beyond it wait their turn (admission control bounds how many are in flight). ONNX Runtime releases Python's "
        "GIL, so overlapping calls keep the cores busy between a call's parallel parts.",
    )
    image_workers: int = Field(
        0,
        ge=0,
        description="Threads in the pool that decodes uploaded images and runs the image models; 0: one per CPU "
        "core, at least 2. Pillow and numpy on small images hold the GIL most of the time, so more threads than "
        "cores only hand it back and forth. Also how many large images decode at once, each charged to the memory "
        "budget only then.",
    )
    max_pinned_versions: int = Field(
        2,
        ge=0,
        description="Versions other than the promoted one kept loaded for requests that pin one (X-Model-Version); "
        "the least recently used is dropped beyond it; 0: pinning off.",
    )
    pinned_load_interval_seconds: float = Field(
        10.0,
        ge=0,
        description="Least time between two loads of pinned versions of one model, in each worker process: a "
        "request pinning a version that is not loaded gets 429 `overloaded` with Retry-After until then (pinned "
        "versions already loaded answer as usual). A load costs from a tenth of a second (digit) to seconds of CPU "
        "(MiniLM), so clients cycling versions cannot make every request a load; 0: no limit.",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes of the service (`deepserve serve --workers`, default 2, sets it for them). "
        "Each process takes 1/N of the concurrency, memory, connection and rate limits, so the configured numbers "
        "bound the whole service; a reload happens in every process or in none (app/workers).",
    )
    # The processes of `deepserve serve` (app/workers).
    max_connections: int = Field(
        0,
        ge=0,
        description="Open client connections the service holds, shared by its workers; beyond it new connections "
        "wait in the kernel's queue until one closes. 0: as many as each worker's open-files limit leaves room for.",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest a request's headers may take to arrive, from its first byte (408 after)."
    )
    keep_alive_seconds: int = Field(
        5, ge=1, description="An idle connection (before its first request or between two) is closed after this."
    )
    reload_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="Longest every worker may take to load a reloaded model before the reload fails as a whole.",
    )
    served_versions: dict[str, str] = Field(
        {},
        description="Set by `deepserve serve` for a worker it starts again: model -> the version reloads chose, as "
        "JSON, so it serves what the other workers serve (not the promoted version).",
    )
    log_level: str = "INFO"
    # Anomaly streams (app/families/anomaly/streams.py).
    data_dir: Path = Field(
        Path("data"),
        description="Folder for the service's own state (writable): anomaly streams in anomaly_streams.sqlite3.",
    )
    max_streams: int = Field(
        1000,
        gt=0,
        description="Most anomaly streams kept (a new one beyond: 429); a stream of k channels counts k.",
    )
    max_stream_points: int = Field(
        10000,
        gt=0,
        description="Most points in one POST /anomaly/streams/{id}/points (413 above; a row of k channels is k).",
    )
    max_streams_per_client: int = Field(
        100,
        ge=0,
        description="With API keys on, most anomaly streams one key may keep (a new one beyond: 429; k channels "
        "count k), besides DEEPSERVE_MAX_STREAMS for all; each key sees only its own streams. 0: no per-key limit.",
    )
    stream_idle_seconds: float = Field(
        30 * 24 * 3600.0,
        ge=0,
        description="An anomaly stream that got no points for this long is deleted (404 after); 0: kept forever.",
    )
    batch_models: Annotated[list[str], NoDecode] = Field(
        ["distilbert"],
        description="Comma-separated models whose concurrent requests share one model call (micro-batching); "
        "empty turns it off. Off for models that answer in well under a millisecond (digit).",
    )
    max_batch_size: int = Field(32, ge=1, description="Most inputs in one micro-batch (1 turns batching off).")
    max_batch_wait_ms: float = Field(
        5.0, ge=0, description="Longest a request waits for others to join its batch, in milliseconds."
    )
    # Access control (app/http/middleware/: auth.py, rate_limit.py, cors.py); all off by default.
    api_keys: Annotated[list[str], NoDecode] = Field(
        [], repr=False, description="Comma-separated API keys (plaintext); any key turns authentication on."
    )
    api_keys_file: Path | None = Field(
        None,
        description="File of `name:sha256hex` lines (`python -m app.http.middleware.auth hash NAME` makes one); "
        "turns it on.",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        [],
        repr=False,
        description="Comma-separated admin keys (plaintext): the routes that change what the service serves "
        "(/admin/...) need one of them (401 without a key, 403 with a client key); they also work as client keys. "
        "With no admin key configured, those routes answer only requests made on this host (a loopback peer that is "
        "not a trusted proxy).",
    )
    admin_keys_file: Path | None = Field(
        None, description="File of `name:sha256hex` admin key lines, like DEEPSERVE_API_KEYS_FILE's."
    )
    auth_metrics: bool = Field(False, description="With API keys on, /metrics needs a key too (open by default).")
    docs_enabled: bool = Field(True, description="Serve /docs, /redoc and /openapi.json (always open when served).")
    rate_limit_per_second: float = Field(
        0.0, ge=0, description="Requests per second each client (API key, or address without keys) may make; 0: off."
    )
    rate_limit_burst: int = Field(10, ge=1, description="Requests a client may make at once before the rate applies.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="Comma-separated origins browsers may call from (CORS); empty: no CORS headers."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated addresses or CIDR networks of the reverse proxies in front of the service. A "
        "request from one of them is counted as the right-most X-Forwarded-For address that is not one of them "
        "(rate limit); a request from any other peer is counted as that peer, whatever it sends. Empty: the peer "
        "address, X-Forwarded-For ignored.",
    )

    @field_validator(
        "models", "batch_models", "api_keys", "admin_keys", "cors_origins", "trusted_proxies", mode="before"
    )
    @classmethod
    def split_names(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            names = [name.strip() for name in value.split(",") if name.strip()]
            # An empty DEEPSERVE_MODELS means "all in the manifest"; any other empty list, "none".
            return names or (None if info.field_name == "models" else [])
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def parse_networks(cls, value: list[str]) -> list[str]:
        """Each entry as a network (`10.0.0.1` is 10.0.0.1/32); a typo stops the service from starting."""
        try:
            return [str(ipaddress.ip_network(entry, strict=False)) for entry in value]
        except ValueError as exc:
            raise ValueError(f"DEEPSERVE_TRUSTED_PROXIES: {exc} (expected addresses or CIDR networks)") from None
