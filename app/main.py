"""The FastAPI application factory: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import health, metrics, models, predict, predict_anomaly, predict_image, predict_sentiment
from app.api.errors import install_error_handlers
from app.body_limit import BodyLimitMiddleware
from app.config import Settings
from app.inference import Inference
from app.limiter import ConcurrencyLimiter
from app.memory import MemoryTrimmer
from app.metrics import Metrics
from app.registry import ModelRegistry
from app.request_log import RequestLogMiddleware, setup_logging


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    setup_logging(settings.log_level)
    registry = ModelRegistry(settings)
    inference = Inference(settings, Metrics())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Load in the background so /health/live answers at once and /health/ready reports progress.
        threading.Thread(target=registry.load_all, name="model-loader", daemon=True).start()
        yield
        await inference.close()  # stop the micro-batching tasks before the loop closes

    app = FastAPI(
        title="DeepServe",
        version="0.1.0",
        description="Trained deep-learning models served over REST.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.limiter = ConcurrencyLimiter(
        settings.max_concurrent_requests, settings.max_inflight_mb * 2**20, on_release=MemoryTrimmer().released
    )
    app.state.metrics = inference.metrics
    app.state.inference = inference
    install_error_handlers(app)
    for module in (health, models, predict, predict_anomaly, predict_image, predict_sentiment, metrics):
        app.include_router(module.router)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_bytes,
        timeout=settings.body_timeout_seconds,
        limiter=app.state.limiter,
    )
    app.add_middleware(RequestLogMiddleware, metrics=app.state.metrics)
    return app
