"""Runtimes by the manifest's `runtime` name."""

from __future__ import annotations

from app.runtimes.anomaly import AnomalyRuntime
from app.runtimes.base import Runtime
from app.runtimes.digit import DigitRuntime
from app.runtimes.distilbert import DistilBertRuntime
from app.runtimes.image import ImageRuntime
from app.runtimes.lstm import LstmSentimentRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    cls.kind: cls for cls in [AnomalyRuntime, DigitRuntime, DistilBertRuntime, ImageRuntime, LstmSentimentRuntime]
}
