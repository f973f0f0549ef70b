"""Runtimes by the manifest's `runtime` name."""

from __future__ import annotations

from app.runtimes.anomaly import AnomalyRuntime
from app.runtimes.base import Runtime
from app.runtimes.digit import DigitRuntime
from app.runtimes.image import ImageRuntime

RUNTIMES: dict[str, type[Runtime]] = {cls.kind: cls for cls in [AnomalyRuntime, DigitRuntime, ImageRuntime]}
