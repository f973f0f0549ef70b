"""Prometheus metrics, one registry per app so several apps (tests) never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "deepserve_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "deepserve_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "deepserve_inference_seconds",
            "Model call latency (one batch)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "deepserve_batch_size",
            "Inputs per model call",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "deepserve_rate_limited", "Requests refused by the per-client rate limit", ["model"], registry=self.registry
        )
        self.model_ready = Gauge(
            "deepserve_model_ready", "1 when the model is ready", ["model"], registry=self.registry
        )
