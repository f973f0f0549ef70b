"""Points appended to a named stream (app/families/anomaly/streams.py), scored with the served nearest-context
detector's settings, as a runtime: POST /anomaly/streams/{id}/points is served as every prediction is
(app/core/serving.py: cost -> decode -> predict on the worker pool -> encode), so its admission, pool and metrics
(a call of the detector's model) are every prediction's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.families.anomaly import series
from app.families.anomaly.context_runtime import NearestContextRuntime
from app.families.anomaly.detector import alarm_limits
from app.families.anomaly.schemas import Sampling, StreamInfo, StreamPointsRequest, StreamPointsResponse
from app.families.anomaly.streams import StoredStream, StreamStore
from app.families.runtime import Runtime


@dataclass(frozen=True)
class StreamAppend:
    store: StreamStore
    owner: str  # the caller's API key name (streams.NO_OWNER with keys off)
    series_id: str
    body: StreamPointsRequest


def described(stream: StoredStream, warmup: int) -> StreamInfo:
    """A stored stream as the routes show it."""
    return StreamInfo(
        series_id=stream.series_id,
        points=stream.points,
        status="warming_up" if stream.points < warmup else "ready",
        sensitivity=stream.sensitivity,
        created=datetime.fromtimestamp(stream.created, UTC),
        updated=datetime.fromtimestamp(stream.updated, UTC),
    )


class StreamRuntime(Runtime[StreamAppend, StreamAppend, StreamPointsResponse]):
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
        past = self.base.config.history + self.base.config.embed  # at most: a stream's new points meet its kept tail
        return self.base.points_cost(len(request.body.values), past)

    def decode(self, request: StreamAppend) -> list[StreamAppend]:
        return [request]

    def predict(self, batch: list[StreamAppend]) -> list[StreamPointsResponse]:
        return [self.append(request) for request in batch]

    def append(self, request: StreamAppend) -> StreamPointsResponse:
        body, config = request.body, self.base.config
        values = series.as_values(body.values)  # null -> NaN: missing
        sampling: list[Sampling] = []
        stamps = body.timestamps

        def check(at: int, last_time: float | None) -> None:  # under the stream's lock: against its last time
            sampling[:] = [series.check_timestamps(stamps, at, last_time)] if stamps is not None else []

        stream, scored, first = request.store.append(
            request.owner, request.series_id, values, stamps, body.sensitivity, config, check
        )
        threshold, _ = alarm_limits(config, stream.sensitivity)
        regions = series.alarm_regions(scored.alarm, scored.score, threshold)
        return StreamPointsResponse(
            **vars(series.points(scored, values)),
            stream=described(stream, config.warmup),
            first_index=first,
            threshold=threshold,
            regions=series.regions_with_times(regions, body.timestamps, at=first),
            sampling=sampling[0] if sampling else None,
            missing=series.missing_report(scored, at=first),
        )

    def encode(self, request: StreamAppend, outputs: list[StreamPointsResponse]) -> StreamPointsResponse:
        [out] = outputs
        return out

    def input_description(self) -> dict[str, Any]:
        return self.base.input_description()
