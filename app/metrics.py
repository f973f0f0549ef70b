"""Prometheus metrics, one registry per app so several apps (tests) never share counters.

With several worker processes (`deepserve serve --workers N`, which sets PROMETHEUS_MULTIPROC_DIR to a fresh folder
before they start) every process writes its values to files there (prometheus_client's multiprocess mode) and
/metrics, whichever process answers it, adds up every process's files.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

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
