"""Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.http.api.deps import ServingDep
from app.http.api.openapi import error_responses

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **error_responses(),
        200: {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
)
def metrics(serving: ServingDep) -> Response:
    """Request counts and latencies, model call latencies and batch sizes, model readiness."""
    metrics = serving.inference.metrics
    for name, record in serving.registry.records.items():
        metrics.model_ready.labels(name).set(1 if record.state.value == "ready" else 0)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
