"""The anomaly autoencoder served from ONNX: per-point scores exactly as training evaluated them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.families.anomaly.scoring import score_series
from app.families.runtime import Runtime, onnx_session


class AnomalyRuntime(Runtime):
    kind = "anomaly-onnx"

    def load(self) -> None:
        self.config = json.loads(self.file("config").read_text())
        self.window = int(self.config["window"])
        self.session = onnx_session(self.file("onnx"), self.settings.inference_threads)
        self.input_name = self.session.get_inputs()[0].name

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: windows})[0]

    def warmup(self) -> None:
        self.predict([np.full(self.window, float(self.config["mean"]))])

    def predict(self, batch: list[np.ndarray]) -> list[dict[str, Any]]:
        return [self.score(values) for values in batch]

    def score(self, values: np.ndarray) -> dict[str, Any]:
        """score_series, refusing (422) a series so far from the training scale that its scores overflow."""
        out = score_series(values, self.reconstruct, self.config)
        if not np.isfinite(out["scores"]).all():
            raise InvalidInput(
                "The series' values are too large in magnitude to score (they overflow the model's float32 "
                "arithmetic); rescale the series, e.g. to other units.",
                {"max_abs_value": float(np.max(np.abs(values)))},
            )
        return out

    def input_description(self) -> dict[str, Any]:
        return {
            "values": f"finite floats, at least {self.window} points (one window), sampled every "
            f"{self.config.get('sampling_seconds', '?')} s like the training series",
            "timestamps": "optional ISO 8601 strings, one per value",
            "window": self.window,
            "threshold_rule": self.config.get("threshold_rule"),
        }
