"""Prometheus metrics, one registry per app so several apps (tests) never share counters.

With several worker processes (`deepserve serve --workers N`, which sets PROMETHEUS_MULTIPROC_DIR to a fresh folder
before they start) every process writes its values to files there (prometheus_client's multiprocess mode) and
/metrics, whichever process answers it, adds up every process's files.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Read once, as prometheus_client itself does when it is imported: its values live in memory or in these files.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


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
        # Several processes: 1 when the model is ready in a live process (each sets it when it answers /metrics).
        self.model_ready = Gauge(
            "deepserve_model_ready",
            "1 when the model is ready",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self._children: dict[tuple, Any] = {}  # label values -> the metric's child: labels() costs ~3 us a call

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered (app/http/middleware/request_log.py). Labels stay bounded: routes are the app's
        route templates (or "unmatched"), and a method outside HTTP's own is "other" (a client may send any token
        there)."""
        method = method if method in METHODS else "other"
        self._child(self.requests, method, route, str(status)).inc()
        self._child(self.latency, route).observe(seconds)

    def model_call(self, model: str, size: int, seconds: float) -> None:
        """One model call of `size` inputs, however many requests it served."""
        self._child(self.inference, model).observe(seconds)
        self._child(self.batch_size, model).observe(size)

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format: this app's, or with several processes, all of theirs."""
        if MULTIPROCESS_DIR is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()  # the collector reads the files; this app's registry would count twice
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    def close(self) -> None:
        """At the process's shutdown: its live-only gauges (model_ready) stop counting."""
        if MULTIPROCESS_DIR is not None:
            multiprocess.mark_process_dead(os.getpid())
