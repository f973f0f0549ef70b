"""The per-series nearest-context detector as a served model: its artifact is the DetectorConfig (detector.json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from app.errors import PayloadTooLarge
from app.families.anomaly import multivariate, series
from app.families.anomaly.detector import DetectorConfig, Scored, alarm_limits
from app.families.anomaly.schemas import (
    MAX_VALUES,
    AnomalyRequest,
    ChannelAlarm,
    MultivariateAnomalyResponse,
    Sampling,
    SeriesAnomalyResponse,
)
from app.families.runtime import Runtime

# Working memory (python -m bench.cost_factors --family nearest_context; peak RSS growth of decode + predict after
# warm-up): +4.7 MB at 1,000 points, +6.5 MB at 5,000, +9.0 MB at 20,000 with the v2 settings (v1, history 3,000:
# +4.8, +20.1, +21.1 MB). It is the distance matrices of one block of points against its candidate contexts (a few
# float64 block x (history + embed) arrays alive at once), then per point the detector's output arrays; the
# estimate below is 9.0 / 9.9 / 12.8 MB (v2).
MATRICES = 4
BYTES_PER_POINT = 200
FIXED_BYTES = 2**20


@dataclass(frozen=True)
class SeriesInput:
    values: np.ndarray  # one value per point, or rows x channels
    sensitivity: float
    causal: bool
    sampling: Sampling | None  # with timestamps: their spacing and gaps
    channels: list[str] | None = None  # the channels' names, for rows


@dataclass(frozen=True)
class SeriesOutput:
    scored: Scored | multivariate.Combined
    sampling: Sampling | None


class NearestContextRuntime(Runtime[AnomalyRequest, SeriesInput, SeriesOutput]):
    kind = "anomaly-nearest-context"
    batchable = False  # one series is one block-wise pass; there is nothing to share between requests

    def load(self) -> None:
        raw = json.loads(self.file("config").read_text())
        unknown = set(raw) - {f.name for f in fields(DetectorConfig)}
        if unknown:
            raise ValueError(f"unknown detector settings {sorted(unknown)}")
        self.config = DetectorConfig(**raw)

    def warmup(self) -> None:
        values = np.sin(np.arange(series.min_length(True, self.config)) / 10.0)
        self.predict([SeriesInput(values, 0.5, True, None)])

    def points_cost(self, points: int, past: int = 0) -> int:
        """Bytes of working memory for scoring `points` points after `past` points already seen (a stream's)."""
        c = self.config
        matrices = MATRICES * 8 * min(c.block, points) * min(c.history + c.embed, points + past)
        return FIXED_BYTES + matrices + BYTES_PER_POINT * points

    def cost(self, request: AnomalyRequest) -> int:
        # Channels are scored one after another: the matrices of one pass, the per-point output of every channel.
        width = len(request.channel_names())
        return self.points_cost(len(request.values)) + BYTES_PER_POINT * len(request.values) * (width - 1)

    def decode(self, request: AnomalyRequest) -> list[SeriesInput]:
        sampling = series.check_timestamps(request.timestamps) if request.timestamps is not None else None
        causal = request.mode == "causal"
        rows = request.rows()
        if rows is not None:
            names = request.channel_names()
            if len(rows) * len(names) > MAX_VALUES:
                raise PayloadTooLarge(
                    f"{len(rows)} rows of {len(names)} channels are {len(rows) * len(names)} values; at most "
                    f"{MAX_VALUES} in one request: send fewer rows.",
                    {"max_values": MAX_VALUES, "values": len(rows) * len(names)},
                )
            table = series.as_table(rows)
            multivariate.check_channels(table, names, causal, self.config)
            return [SeriesInput(table, request.sensitivity, causal, sampling, names)]
        values = series.as_values(request.single())
        series.check_length(len(values), causal, self.config, int(np.isnan(values).sum()))
        return [SeriesInput(values, request.sensitivity, causal, sampling)]

    def predict(self, batch: list[SeriesInput]) -> list[SeriesOutput]:
        return [SeriesOutput(self.score(x), x.sampling) for x in batch]

    def score(self, x: SeriesInput) -> Scored | multivariate.Combined:
        if x.channels is not None:
            return multivariate.score(x.values, x.channels, x.sensitivity, x.causal, self.config)
        return series.score_series(x.values, x.sensitivity, x.causal, self.config)

    def encode(
        self, request: AnomalyRequest, outputs: list[SeriesOutput]
    ) -> SeriesAnomalyResponse | MultivariateAnomalyResponse:
        [out] = outputs
        threshold, _ = alarm_limits(self.config, request.sensitivity)
        if isinstance(out.scored, multivariate.Combined):
            return self.encode_rows(request, out.scored, out.sampling, threshold)
        values = series.as_values(request.single())
        regions = series.alarm_regions(out.scored.alarm, out.scored.score, threshold)
        return SeriesAnomalyResponse(
            **vars(series.points(out.scored, values)),
            mode=request.mode,
            sensitivity=request.sensitivity,
            threshold=threshold,
            warmup=self.config.warmup,
            regions=series.regions_with_times(regions, request.timestamps),
            sampling=out.sampling,
            missing=series.missing_report(out.scored),
            model=self.ref(),
        )

    def encode_rows(
        self, request: AnomalyRequest, combined: multivariate.Combined, sampling: Sampling | None, threshold: float
    ) -> MultivariateAnomalyResponse:
        table = series.as_table(request.rows() or [])
        times = request.timestamps
        regions = series.alarm_regions(combined.alarm, combined.score, threshold)
        names = combined.names
        return MultivariateAnomalyResponse(
            mode=request.mode,
            sensitivity=request.sensitivity,
            threshold=threshold,
            warmup=multivariate.rows_config(self.config, len(names)).warmup,
            channels=names,
            status=combined.status,  # type: ignore[arg-type]  # "scored", "warming_up" or "missing"
            scores=combined.score.tolist(),
            is_anomaly=combined.alarm.tolist(),
            alarms=[
                ChannelAlarm(
                    index=a.index,
                    time=times[a.index].isoformat() if times else None,
                    kind=a.kind,  # type: ignore[arg-type]  # "channels" or "correlation"
                    channels=list(a.scores),
                    scores=a.scores,
                )
                for a in combined.alarms
            ],
            regions=series.regions_with_times(regions, times),
            peers=combined.peers,
            per_channel={
                name: vars(series.points(scored, table[:, c]))
                for c, (name, scored) in enumerate(zip(names, combined.channels, strict=True))
            },
            sampling=sampling,
            missing={
                name: series.missing_report(scored) for name, scored in zip(names, combined.channels, strict=True)
            },
            model=self.ref(),
        )

    def input_description(self) -> dict[str, Any]:
        return {
            "values": f"finite floats or null (missing), any scale, at least {series.min_length(True, self.config)} "
            f"present (causal; {series.min_length(False, self.config)} non-causal)",
            "rows": f"several channels: one row of values per time step, at most {MAX_VALUES} values in all, "
            "each channel scored alone and against the channels coupled with it",
            "timestamps": "optional ISO 8601 strings, never going backwards, one per value (gaps and repeated "
            "timestamps are reported)",
            "sensitivity": "0 to 1, 0.5 by default",
            "min_points": series.min_length(True, self.config),  # the default (causal) mode's minimum
            "detector": asdict(self.config),
        }
