"""The FastAPI application factory: `uvicorn --factory app.http.main:create_app`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.config import Settings
from app.core.limiter import ConcurrencyLimiter, share
from app.core.memory import MemoryTrimmer
from app.core.metrics import Metrics
from app.core.registry import ModelRegistry
from app.core.reloads import Reloader
from app.core.serving import Serving
from app.families.anomaly.streams import StreamStore
from app.http.api import (
    admin,
    anomaly_streams,
    docs,
    explain,
    health,
    metrics,
    models,
    playground,
    predict,
    predict_anomaly,
    predict_image,
    predict_sentiment,
    v2,
)
from app.http.api.errors import install_error_handlers
from app.http.api.openapi import install_openapi
from app.http.client_address import ClientAddresses
from app.http.middleware.auth import AuthMiddleware, load_keys
from app.http.middleware.body_limit import BodyLimitMiddleware
from app.http.middleware.cors import CorsMiddleware
from app.http.middleware.fast_lane import ROUTES, FastLane
from app.http.middleware.rate_limit import RateLimitMiddleware, TokenBucketLimiter
from app.http.middleware.request_log import RequestLogMiddleware, setup_logging
from app.http.middleware.security_headers import SecurityHeadersMiddleware


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    setup_logging(settings.log_level)
    api_keys = load_keys(settings)  # a bad keys file stops the service here, before it serves anything
    addresses = ClientAddresses(settings.trusted_proxies)  # who sent a request (rate limit, admin loopback rule)
    registry = ModelRegistry(settings)
    meters = Metrics()  # this process's Prometheus metrics (`metrics` is the /metrics route module here)
    streams = StreamStore(
        settings.data_dir / "anomaly_streams.sqlite3",
        settings.max_streams,
        settings.max_streams_per_client,
        settings.stream_idle_seconds,
    )
    reloader = Reloader(registry)  # across the worker processes of `deepserve serve`: app/workers

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        serving.start()  # the executor, on this event loop, attached to every runtime the registry serves
        app.state.inference = serving.inference
        # Load in the background so /health/live answers at once and /health/ready reports progress.
        threading.Thread(target=registry.load_all, name="model-loader", daemon=True).start()
        yield
        await serving.stop()  # stop the micro-batching tasks before the loop closes
        streams.close()
        meters.close()

    # The docs pages are the service's own (app/http/api/docs.py: their assets served from here, not a CDN).
    app = FastAPI(
        title="DeepServe",
        version="0.1.0",
        description="Trained deep-learning models served over REST.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.registry = registry
    # Each of the service's worker processes admits its share of the configured limits (app/core/limiter.py).
    workers = settings.workers
    app.state.limiter = ConcurrencyLimiter(
        share(settings.max_concurrent_requests, workers),
        share(settings.max_inflight_mb * 2**20, workers),
        on_release=MemoryTrimmer().released,
    )
    app.state.explain_limiter = ConcurrencyLimiter(share(settings.max_concurrent_explanations, workers))
    app.state.metrics = meters
    app.state.streams = streams
    app.state.reloader = reloader
    install_error_handlers(app)
    install_openapi(app)
    routers = [
        m.router
        for m in (
            health,
            models,
            predict,
            predict_anomaly,
            anomaly_streams,
            predict_image,
            predict_sentiment,
            explain,
            metrics,
            admin,
            playground,
            v2,
        )
    ]
    for router in routers:
        app.include_router(router)
    docs_routes: frozenset[str] = frozenset()
    if settings.docs_enabled and app.openapi_url:
        docs_router, docs_paths = docs.router(app.openapi_url, app.title)
        app.include_router(docs_router)
        docs_routes = docs_paths | {app.openapi_url}
    app.mount("/static", StaticFiles(directory=playground.STATIC), name="static")  # the playground's script and style
    # Outermost last: security headers -> request log -> CORS -> API key and role -> rate limit -> body size ->
    # fast lane (the common image requests, app/http/middleware/fast_lane.py) -> routes. Each refusal comes before the
    # body is read; CORS answers preflights before the key check and adds its headers to every answer.
    serving = app.state.serving = Serving(registry, settings, app.state.limiter, app.state.explain_limiter, meters)
    fast_routes = {path: r for m in routers for r in m.routes if (path := getattr(r, "path", "")) in ROUTES}
    app.add_middleware(FastLane, serving=app.state.serving, routes=fast_routes)  # innermost: after every check below
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_bytes,
        timeout=settings.body_timeout_seconds,
        limiter=app.state.limiter,
    )
    if settings.rate_limit_per_second > 0:
        per_second, burst = settings.rate_limit_per_second / workers, share(settings.rate_limit_burst, workers)
        limiter = TokenBucketLimiter(per_second, burst)
        routes = [route.path for router in routers for route in router.routes]  # type: ignore[attr-defined]
        app.add_middleware(
            RateLimitMiddleware,
            limiter=limiter,
            metrics=app.state.metrics,
            routes=[*routes, *docs_routes],
            addresses=addresses,
        )
    # Always on: with no key configured, the admin routes still answer only this host.
    app.add_middleware(
        AuthMiddleware,
        keys=api_keys,
        addresses=addresses,
        protect_metrics=settings.auth_metrics,
        docs=docs_routes,
        admin_prefix=admin.router.prefix,
    )
    if settings.cors_origins:
        api_routes = [route for router in routers for route in router.routes]  # type: ignore[attr-defined]
        app.add_middleware(CorsMiddleware, origins=settings.cors_origins, routes=api_routes)
    app.add_middleware(RequestLogMiddleware, metrics=app.state.metrics)
    app.add_middleware(SecurityHeadersMiddleware, docs=docs_routes)
    return app
