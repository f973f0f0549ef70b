"""The anomaly autoencoder served from ONNX: per-point scores exactly as training evaluated them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.families.anomaly.schemas import AlarmRegion, AnomalyRequest, AnomalyResponse
from app.families.anomaly.scoring import score_series
from app.families.runtime import Runtime, onnx_session

# Working memory (bench/cost_factors.py): windows are scored 16 at a time (scoring.SCORE_BATCH), so the model
# calls cost the same at any length: +1.3 MB at 1,000 points, +1.4 MB at 5,000, +2.0 MB at 20,000. Per point:
# the values as float64, float32 and sums, and the response (~100 bytes).
BYTES_PER_POINT = 128.0
FIXED_BYTES = 4 * 2**20


@dataclass(frozen=True)
class SeriesScores:
    scores: np.ndarray  # float64, one per point
    flags: np.ndarray  # bool, scores > threshold
    threshold: float
    regions: list[tuple[int, int]]  # maximal runs of flagged points, first and last index inclusive


class AnomalyRuntime(Runtime[AnomalyRequest, np.ndarray, SeriesScores]):
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

    def cost(self, request: AnomalyRequest) -> int:
        return int(FIXED_BYTES + len(request.values) * BYTES_PER_POINT)

    def decode(self, request: AnomalyRequest) -> list[np.ndarray]:
        if request.rows() is not None:
            raise InvalidInput(
                "The autoencoder scores one channel; several channels (values as rows) are scored by method "
                "nearest_context.",
                {"channels": len(request.channel_names())},
            )
        values = request.single()
        if None in values:
            raise InvalidInput(
                "The autoencoder needs every value; missing (null) values are scored by method nearest_context.",
                {"index": values.index(None)},
            )
        if len(request.values) < self.window:
            raise InvalidInput(
                f"The series has {len(request.values)} values; at least one window of {self.window} is needed.",
                {"window": self.window, "length": len(request.values)},
            )
        return [np.asarray(values, dtype=np.float64)]

    def predict(self, batch: list[np.ndarray]) -> list[SeriesScores]:
        return [self.score(values) for values in batch]

    def score(self, values: np.ndarray) -> SeriesScores:
        """score_series, refusing (422) a series so far from the training scale that its scores overflow."""
        out = score_series(values, self.reconstruct, self.config)
        if not np.isfinite(out["scores"]).all():
            raise InvalidInput(
                "The series' values are too large in magnitude to score (they overflow the model's float32 "
                "arithmetic); rescale the series, e.g. to other units.",
                {"max_abs_value": float(np.max(np.abs(values)))},
            )
        return SeriesScores(out["scores"], out["flags"], out["threshold"], out["regions"])

    def encode(self, request: AnomalyRequest, outputs: list[SeriesScores]) -> AnomalyResponse:
        [out], times = outputs, request.timestamps
        regions = [
            AlarmRegion(
                start=a,
                end=b,
                start_time=times[a].isoformat() if times else None,
                end_time=times[b].isoformat() if times else None,
            )
            for a, b in out.regions
        ]
        return AnomalyResponse(
            scores=out.scores.tolist(),
            is_anomaly=out.flags.tolist(),
            threshold=out.threshold,
            window=self.window,
            regions=regions,
            model=self.ref(),
        )

    def input_description(self) -> dict[str, Any]:
        return {
            "values": f"finite floats, at least {self.window} points (one window), sampled every "
            f"{self.config.get('sampling_seconds', '?')} s like the training series",
            "timestamps": "optional ISO 8601 strings, one per value",
            "window": self.window,
            "min_points": self.window,
            "threshold_rule": self.config.get("threshold_rule"),
        }
