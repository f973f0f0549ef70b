"""Points appended to a named stream (app/families/anomaly/streams.py), scored with the served nearest-context
detector's settings, as a runtime: POST /anomaly/streams/{id}/points is served as every prediction is
(app/core/serving.py: cost -> decode -> predict on the worker pool -> encode), so its admission, pool and metrics
(a call of the detector's model) are every prediction's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from app.families.anomaly import multivariate, series
from app.families.anomaly.context_runtime import BYTES_PER_POINT, NearestContextRuntime
from app.families.anomaly.detector import DetectorConfig, Scored, alarm_limits
from app.families.anomaly.multivariate_stream import ChannelsScored
from app.families.anomaly.schemas import (
    ChannelsStreamPointsResponse,
    Sampling,
    StreamAlarm,
    StreamInfo,
    StreamPointsRequest,
    StreamPointsResponse,
)
from app.families.anomaly.streams import StoredStream, StreamStore
from app.families.runtime import Runtime

StreamResponse = StreamPointsResponse | ChannelsStreamPointsResponse


@dataclass(frozen=True)
class StreamAppend:
    store: StreamStore
    owner: str  # the caller's API key name (streams.NO_OWNER with keys off)
    series_id: str
    body: StreamPointsRequest


def described(stream: StoredStream, config: DetectorConfig) -> StreamInfo:
    """A stored stream as the routes show it (ready once past the warm-up of its channel count)."""
    warmup = multivariate.rows_config(config, len(stream.channels) if stream.channels else 1).warmup
    return StreamInfo(
        series_id=stream.series_id,
        points=stream.points,
        channels=stream.channels,
        status="warming_up" if stream.points < warmup else "ready",
        sensitivity=stream.sensitivity,
        created=datetime.fromtimestamp(stream.created, UTC),
        updated=datetime.fromtimestamp(stream.updated, UTC),
    )


def state_bytes(config: DetectorConfig) -> int:
    """One detector's state in memory (its arrays, and their bytes as stored)."""
    return 2 * 8 * (config.history + config.embed + 2 * config.baseline + config.record)


class StreamRuntime(Runtime[StreamAppend, StreamAppend, StreamResponse]):
    """Wraps the served detector (its entry, version and settings; made per request: it holds nothing else); one
    append is one input, scored and stored in one pass on the worker pool (the store holds the stream's lock from
    reading its state to writing it back)."""

    kind = "anomaly-stream"
    batchable = False

    def __init__(self, base: NearestContextRuntime) -> None:
        super().__init__(base.entry, base.artifact_dir, base.settings)
        self.base = base

    def load(self) -> None:
        pass  # the detector is loaded

    def warmup(self) -> None:
        pass

    def cost(self, request: StreamAppend) -> int:
        config = self.base.config
        past = config.history + config.embed  # at most: a stream's new points meet its kept tail
        rows = len(request.body.values)
        width = request.body.width() or 1
        detectors = width + (width if width > 1 else 0)  # each channel's, and a departure's each at most
        # Channels are scored one after another: the matrices of one pass; every detector's state and output.
        return self.base.points_cost(rows, past) + (detectors - 1) * (BYTES_PER_POINT * rows + state_bytes(config))

    def decode(self, request: StreamAppend) -> list[StreamAppend]:
        return [request]

    def predict(self, batch: list[StreamAppend]) -> list[StreamResponse]:
        return [self.append(request) for request in batch]

    def append(self, request: StreamAppend) -> StreamResponse:
        body, config = request.body, self.base.config
        rows = body.rows()
        values = series.as_values(body.single()) if rows is None else series.as_table(rows)  # null -> NaN: missing
        sampling: list[Sampling] = []
        stamps = body.timestamps

        def check(at: int, last_time: float | None) -> None:  # under the stream's lock: against its last time
            sampling[:] = [series.check_timestamps(stamps, at, last_time)] if stamps is not None else []

        stream, scored, first = request.store.append(
            request.owner, request.series_id, values, stamps, body.sensitivity, config, check, body.channels
        )
        threshold, _ = alarm_limits(config, stream.sensitivity)
        if isinstance(scored, ChannelsScored):
            return self.rows_answer(stream, scored, first, values, threshold, body, sampling[0] if sampling else None)
        assert isinstance(scored, Scored)
        regions = series.alarm_regions(scored.alarm, scored.score, threshold)
        return StreamPointsResponse(
            **vars(series.points(scored, values)),
            stream=described(stream, config),
            first_index=first,
            threshold=threshold,
            regions=series.regions_with_times(regions, body.timestamps, at=first),
            sampling=sampling[0] if sampling else None,
            missing=series.missing_report(scored, at=first),
        )

    def rows_answer(
        self,
        stream: StoredStream,
        scored: ChannelsScored,
        first: int,
        values: np.ndarray,
        threshold: float,
        body: StreamPointsRequest,
        sampling: Sampling | None,
    ) -> ChannelsStreamPointsResponse:
        names = stream.channels or []
        regions = series.alarm_regions(scored.alarm, scored.score, threshold)
        return ChannelsStreamPointsResponse(
            stream=described(stream, self.base.config),
            first_index=first,
            threshold=threshold,
            channels=names,
            status=scored.status,  # type: ignore[arg-type]  # "scored", "warming_up" or "missing"
            scores=scored.score.tolist(),
            is_anomaly=scored.alarm.tolist(),
            alarms=[
                StreamAlarm(
                    index=a.alarm.index,
                    time=a.time,
                    kind=a.alarm.kind,  # type: ignore[arg-type]  # "channels" or "correlation"
                    channels=list(a.alarm.scores),
                    scores=a.alarm.scores,
                    final=a.final,
                )
                for a in scored.alarms
            ],
            regions=series.regions_with_times(regions, body.timestamps, at=first),
            peers=scored.peers,
            per_channel={
                name: vars(series.points(s, values[:, c]))
                for c, (name, s) in enumerate(zip(names, scored.channels, strict=True))
            },
            sampling=sampling,
            missing={name: series.missing_report(s, at=first) for name, s in zip(names, scored.channels, strict=True)},
        )

    def encode(self, request: StreamAppend, outputs: list[StreamResponse]) -> StreamResponse:
        [out] = outputs
        return out

    def input_description(self) -> dict[str, Any]:
        return self.base.input_description()
