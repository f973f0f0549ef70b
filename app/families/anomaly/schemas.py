"""Requests and responses of POST /predict/anomaly and the /anomaly/streams routes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from app.config import Settings
from app.families.anomaly.detector import DEFAULT
from app.schemas import ModelRef, RequestBody

MAX_POINTS = 20_000  # about two seconds of scoring on one CPU core; longer series should be sent in parts
MAX_ABS_VALUE = 1e30  # far beyond any real series; values near 1e300 overflowed the scoring into NaN (null) scores
MAX_CHANNELS = 16  # values in one row of a multivariate series
MAX_VALUES = MAX_POINTS  # rows x channels in one request (413 past it; JSON Schema cannot state it): each channel
# is scored alone and each coupled channel's departure from its peers too, so at most two univariate requests' work


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("a timestamp is an ISO 8601 string")
    return value


# What the schema says, no more: JSON numbers (strict: not true/false or "1.5"), ISO 8601 strings (not epoch numbers).
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
Value = FiniteFloat | None  # null: a missing value (skipped by the detector and reported)
Timestamp = Annotated[datetime, BeforeValidator(_text)]
Row = Annotated[list[Value], Field(min_length=1, max_length=MAX_CHANNELS, fail_fast=True)]  # one time step
ChannelName = Annotated[str, Field(min_length=1, max_length=64)]
Series = Annotated[list[Value], Field(max_length=MAX_POINTS, fail_fast=True)]
Rows = Annotated[list[Row], Field(max_length=MAX_POINTS, fail_fast=True)]
StreamSeries = Annotated[list[Value], Field(min_length=1, fail_fast=True)]  # a stream's request: its route bounds
StreamRows = Annotated[list[Row], Field(min_length=1, fail_fast=True)]  # the values (DEEPSERVE_MAX_STREAM_POINTS)


Sensitivity = Annotated[
    float,
    Field(
        strict=True,  # a JSON number: not true/false or "0.5", as the schema says
        ge=0.0,
        le=1.0,
        description="0.5 by default; each 0.25 up halves the score an alarm needs (more alarms), each 0.25 down "
        "doubles it.",
    ),
]


class AnomalyRequest(RequestBody):
    values: Series | Rows = Field(
        description="The series, oldest first; null for a missing value. Several aligned channels: one row per time "
        f"step, one value per channel in each (every row as long, at most {MAX_CHANNELS} channels and "
        f"{MAX_VALUES} values in all), e.g. [[0.4, 812.0], [0.5, null], ...].",
    )
    channels: list[ChannelName] | None = Field(
        None,
        max_length=MAX_CHANNELS,
        description='With rows: the channels\' names, one per value of a row (default: "0", "1", ...).',
    )
    timestamps: list[Timestamp] | None = Field(
        None,
        max_length=MAX_POINTS,
        fail_fast=True,
        description="Optional ISO 8601 time of each value, never going backwards; gaps and repeated timestamps "
        "(a daylight-saving hour) are reported.",
    )
    method: Literal["nearest_context", "autoencoder"] = Field(
        "nearest_context",
        description="nearest_context: any series, scaled and judged on its own past (no model needed). "
        "autoencoder: the committed model trained on NAB nyc_taxi, with that series' frozen scale and threshold.",
    )
    sensitivity: Sensitivity = 0.5
    mode: Literal["causal", "non_causal"] = Field(
        "causal",
        description="causal: each point is scored from the points before it, the first ones are its warm-up. "
        "non_causal: the warm-up points are scored too, from the points after them (not what a live monitor sees).",
    )

    @classmethod
    def served_schema(cls, schema: dict[str, Any], settings: Settings, ready: Mapping[str, Any]) -> dict[str, Any]:
        """The fewest values each method and mode needs, as three exclusive variants (JSON Schema's oneOf): the
        autoencoder's from the window of the model served (when it is ready)."""
        from app.families.anomaly import multivariate, series  # they read this module's models

        window = getattr(ready.get("anomaly"), "window", None)
        props = schema["properties"]
        values = props["values"]
        if window is None:
            model_min, model_text = (
                1,
                (
                    "the served model's window; the model is not loaded, so its window is not known here (the route "
                    "answers 503 meanwhile)"
                ),
            )
        else:
            model_min, model_text = window, f"one window of the served model: {window} values"
        causal, non_causal = series.min_length(causal=True), series.min_length(causal=False)
        several = multivariate.rows_config(DEFAULT, 2)
        rows_causal, rows_non_causal = series.min_length(True, several), series.min_length(False, several)
        values["minItems"] = min(model_min, causal)
        values["description"] += (
            f" At least {causal} present (non-null) values (nearest_context, causal), {non_causal} (nearest_context, "
            f"non_causal) or {model_text}, none null (autoencoder). With rows of one value: as many rows. With rows "
            f"of several channels: at least {rows_causal} rows (causal) or {rows_non_causal} (non_causal), and each "
            "channel as many present values (nearest_context only)."
        )

        def fewest(one: int, rows: int) -> dict[str, Any]:
            """At least `one` items, and at least `rows` once any item is a row of several values."""
            several_values = {"type": "array", "minItems": 2}
            return {"minItems": one, "anyOf": [{"items": {"not": several_values}}, {"minItems": rows}]}

        def variant(
            title: str, values: dict[str, Any], method: dict[str, Any], mode: dict[str, Any], required: list[str]
        ):
            return {
                "title": title,
                "required": ["values", *required],
                "properties": {"values": values, "method": method, "mode": mode},
            }

        per_series = {"enum": ["nearest_context"]}
        schema["oneOf"] = [
            variant(
                "Autoencoder",
                {"minItems": model_min, "items": {"type": "number"}},
                {"const": "autoencoder"},
                {},
                ["method"],
            ),
            variant("Causal", fewest(causal, rows_causal), per_series, {"enum": ["causal"]}, []),
            variant("Non-causal", fewest(non_causal, rows_non_causal), per_series, {"const": "non_causal"}, ["mode"]),
        ]
        props["timestamps"]["description"] += (
            " When given, exactly one per value and never going backwards (otherwise 422 invalid_input; JSON Schema "
            "cannot say either)."
        )
        return schema

    @model_validator(mode="after")
    def same_lengths(self) -> AnomalyRequest:
        check_shape(self.values, self.timestamps, self.channels)
        return self

    def rows(self) -> list[list[float | None]] | None:
        """The values as rows (a multivariate series), or None for a single channel."""
        return rows_of(self.values)

    def single(self) -> list[float | None]:
        """The values of a one-channel series (call after rows() is None)."""
        return single_of(self.values)

    def channel_names(self) -> list[str]:
        return names_of(self.rows(), self.channels)


def rows_of(values: list[Any]) -> list[list[float | None]] | None:
    """A request's `values` as rows (several channels), or None for one channel (numbers or nulls)."""
    return values if values and isinstance(values[0], list) else None


def single_of(values: list[Any]) -> list[float | None]:
    """A request's `values` of one channel (call after rows_of(values) is None)."""
    if rows_of(values) is not None:
        raise ValueError("the values are rows of several channels: use rows()")
    return values


def names_of(rows: list[list[float | None]] | None, channels: list[str] | None) -> list[str]:
    """The channels' names: `channels` as sent, or "0", "1", ... one per value of a row (one channel: "0")."""
    width = len(rows[0]) if rows else 1
    return list(channels) if channels is not None else [str(i) for i in range(width)]


def check_shape(values: list[Any], timestamps: list[Any] | None, channels: list[str] | None) -> None:
    """The checks a request of values (POST /predict/anomaly, a stream's points) gets beyond its fields' own: one
    timestamp per value (row), `channels` only with rows, one value per channel in every row, no name twice."""
    if timestamps is not None and len(timestamps) != len(values):
        raise ValueError(f"{len(timestamps)} timestamps for {len(values)} values")
    rows = rows_of(values)
    if rows is None:
        if channels is not None:
            raise ValueError("`channels` names the values of each row: send `values` as rows to use it")
        return
    names = names_of(rows, channels)
    if len(set(names)) != len(names):
        raise ValueError(f"channel names repeat: {sorted({n for n in names if names.count(n) > 1})[:3]}")
    for i, row in enumerate(rows):
        if len(row) != len(names):
            more = "more values than" if len(row) > len(names) else f"no value for channel {names[len(row)]!r} of"
            count = f"{len(row)} value{'' if len(row) == 1 else 's'}"
            raise ValueError(f"row {i} has {count}: {more} the {len(names)} channels {names[:8]}")


class AlarmRegion(BaseModel):
    start: int
    end: int
    start_time: str | None = Field(None, description="ISO 8601, as the request's timestamps (no zone added).")
    end_time: str | None = None


class AnomalyResponse(BaseModel):
    scores: list[float]
    is_anomaly: list[bool]
    threshold: float
    window: int
    regions: list[AlarmRegion] = Field(description="Maximal runs of flagged points, first and last index inclusive.")
    model: ModelRef


class Gap(BaseModel):
    after: int = Field(description="Index of the last point before the gap.")
    start_time: str = Field(description="ISO 8601, as the request's timestamps (no zone added).")
    end_time: str
    missing_points: int = Field(description="Points the median step would have put in the gap.")


class Duplicate(BaseModel):
    index: int = Field(description="A point whose timestamp equals the one before it.")
    time: str


class Missing(BaseModel):
    count: int = Field(description="Values that were null: not scored, the detector goes on from the others.")
    indices: list[int] = Field(description="The first 100 of them.")


class Sampling(BaseModel):
    step_seconds: float | None = Field(description="Median time between points (null for a single point).")
    regular: bool = Field(description="Every step within 1% of the median.")
    gaps: list[Gap] = Field(
        description="Steps over 1.5x the median (the first 100); the detector scores the points "
        "in order, as if the gap were not there."
    )
    gap_count: int = 0
    duplicates: list[Duplicate] = Field(
        default_factory=list,
        description="Points whose timestamp repeats the one before (the first 100): a clock put back, such as an "
        "hour of local time at a daylight-saving change; they are scored in order like the others.",
    )
    duplicate_count: int = 0


class PointColumns(BaseModel):
    """Per point, one entry each, in the order of the values; null only in expected/lower/upper of a missing value."""

    status: list[Literal["scored", "warming_up", "missing"]]
    scores: list[float] = Field(
        description="Distance to the nearest past context / its usual value (0 in warm-up and for missing values)."
    )
    is_anomaly: list[bool] = Field(description="The points that raise an alarm (one per event, see regions).")
    expected: list[float | None] = Field(
        description="What followed the most similar past context (the value in warm-up, null if missing)."
    )
    lower: list[float | None]
    upper: list[float | None]
    direction: list[Literal["spike", "dip", "none"]] = Field(description="Above the band, below it, or inside it.")


class SeriesAnomalyResponse(PointColumns):
    method: Literal["nearest_context"] = "nearest_context"
    mode: Literal["causal", "non_causal"]
    sensitivity: float
    threshold: float = Field(description="The score an alarm needs at this sensitivity.")
    warmup: int = Field(description="Points learned before the first score (causal mode).")
    regions: list[AlarmRegion] = Field(
        description="Each alarm and the points after it still at or over the threshold, first and last inclusive."
    )
    sampling: Sampling | None = Field(None, description="With timestamps: spacing, gaps and repeated timestamps.")
    missing: Missing = Field(description="The null values.")
    model: ModelRef = Field(description="The detector's settings that answered (models/nearest_context).")


class ChannelAlarm(BaseModel):
    index: int = Field(description="The row that raised the alarm.")
    time: str | None = Field(None, description="Its timestamp, as the request's (no zone added).")
    kind: Literal["channels", "correlation"] = Field(
        description="channels: these channels' own detectors alarmed. correlation: none did; these channels left "
        "their usual relation to the channels coupled with them (see `peers`)."
    )
    channels: list[str] = Field(description="The channels that drove the alarm.")
    scores: dict[str, float] = Field(description="Each driving channel's highest score in the event.")


class MultivariateAnomalyResponse(BaseModel):
    """A series of several channels (values sent as rows): one alarm stream for the series."""

    method: Literal["nearest_context"] = "nearest_context"
    mode: Literal["causal", "non_causal"]
    sensitivity: float
    threshold: float = Field(description="The score an alarm needs at this sensitivity (every channel alike).")
    warmup: int = Field(description="Present values of each channel learned before its first score (causal mode).")
    channels: list[str] = Field(description="The channels' names, in the order of each row's values.")
    status: list[Literal["scored", "warming_up", "missing"]] = Field(
        description="Per row: scored when a channel is scored there, missing when every channel is null."
    )
    scores: list[float] = Field(description="Per row: the highest score of a channel or of a channel's departure.")
    is_anomaly: list[bool] = Field(description="The rows that raise a series alarm (one per event).")
    alarms: list[ChannelAlarm] = Field(description="Each series alarm with the channels that drove it.")
    regions: list[AlarmRegion] = Field(
        description="Each alarm and the rows after it still at or over the threshold, first and last inclusive."
    )
    peers: dict[str, list[str]] = Field(
        description="The channels coupled with each channel (|correlation| >= 0.7 over the warm-up rows), whose "
        "relation to it is checked."
    )
    per_channel: dict[str, PointColumns] = Field(description="Each channel scored alone, as a one-channel series.")
    sampling: Sampling | None = Field(None, description="With timestamps: spacing, gaps and repeated timestamps.")
    missing: dict[str, Missing] = Field(description="Each channel's null values.")
    model: ModelRef = Field(description="The detector's settings that answered (models/nearest_context).")


class StreamPointsRequest(RequestBody):
    values: StreamSeries | StreamRows = Field(
        description="The new points, oldest first; null for a missing value. A stream of several aligned channels: "
        f"one row per time step, one value per channel in each (at most {MAX_CHANNELS} channels), as in POST "
        "/predict/anomaly. A stream's first points fix its channels (numbers: one channel; rows: their channels).",
    )
    channels: list[ChannelName] | None = Field(
        None,
        max_length=MAX_CHANNELS,
        description='With rows: the channels\' names, one per value of a row; default: the stream\'s ("0", "1", ... '
        "for a new stream). Other names, or rows of another width, than the stream's first points had: 422.",
    )
    timestamps: list[Timestamp] | None = Field(
        None,
        fail_fast=True,
        description="Optional ISO 8601 time of each point, never going backwards, none before the stream's last "
        "one (a repeated timestamp is accepted and reported).",
    )
    sensitivity: Sensitivity | None = Field(
        None, description="Set (or change) the stream's sensitivity; default: the stream's, 0.5 for a new stream."
    )

    @model_validator(mode="after")
    def same_lengths(self) -> StreamPointsRequest:
        check_shape(self.values, self.timestamps, self.channels)
        return self

    def rows(self) -> list[list[float | None]] | None:
        """The points as rows (a stream of several channels), or None for one channel."""
        return rows_of(self.values)

    def single(self) -> list[float | None]:
        """The points of a one-channel stream (call after rows() is None)."""
        return single_of(self.values)

    def width(self) -> int | None:
        """Values in a row (None: one channel, values as numbers)."""
        rows = self.rows()
        return None if rows is None else len(rows[0])


class StreamInfo(BaseModel):
    series_id: str
    points: int = Field(description="Points (rows, for several channels) received so far.")
    channels: list[str] | None = Field(
        None, description="A stream of several channels: their names, fixed by its first points (null: one channel)."
    )
    status: Literal["warming_up", "ready"] = Field(description="warming_up until the stream has learned its scale.")
    sensitivity: float
    created: datetime
    updated: datetime


class StreamPointsResponse(PointColumns):
    stream: StreamInfo
    first_index: int = Field(description="Stream index of the first point of this request.")
    threshold: float = Field(description="The score an alarm needs at the stream's sensitivity.")
    regions: list[AlarmRegion] = Field(description="Alarm regions among these points, as stream indices.")
    sampling: Sampling | None = Field(
        None, description="With timestamps: spacing, gaps and repeated timestamps among these points (stream indices)."
    )
    missing: Missing = Field(description="The null values among these points (stream indices).")


class StreamAlarm(ChannelAlarm):
    final: bool = Field(
        description="The event's rows (the alarm's row and the 9 after it) are all in: kind, channels and scores "
        "are final, the batch answer's. Until then each request that reaches into them reports the alarm again, "
        "as it stands."
    )


class ChannelsStreamPointsResponse(BaseModel):
    """The points of a stream of several channels: one alarm stream for the series, as POST /predict/anomaly
    answers rows, for these rows."""

    stream: StreamInfo
    first_index: int = Field(description="Stream index of the first row of this request.")
    threshold: float = Field(description="The score an alarm needs at the stream's sensitivity (every channel alike).")
    channels: list[str] = Field(description="The stream's channels, in the order of each row's values.")
    status: list[Literal["scored", "warming_up", "missing"]] = Field(
        description="Per row: scored when a channel is scored there, missing when every channel is null."
    )
    scores: list[float] = Field(description="Per row: the highest score of a channel or of a channel's departure.")
    is_anomaly: list[bool] = Field(description="The rows that raise a series alarm (one per event).")
    alarms: list[StreamAlarm] = Field(
        description="Each series alarm whose event reaches into these rows (stream indices), with the channels that "
        "drove it so far (see `final`)."
    )
    regions: list[AlarmRegion] = Field(description="Alarm regions among these rows, as stream indices.")
    peers: dict[str, list[str]] = Field(
        description="The channels coupled with each channel (|correlation| >= 0.7 over the stream's warm-up rows; "
        "empty until they are in)."
    )
    per_channel: dict[str, PointColumns] = Field(description="Each channel scored alone, as a one-channel stream.")
    sampling: Sampling | None = Field(
        None, description="With timestamps: spacing, gaps and repeated timestamps among these rows (stream indices)."
    )
    missing: dict[str, Missing] = Field(description="Each channel's null values among these rows (stream indices).")


class StreamList(BaseModel):
    streams: list[StreamInfo] = Field(description="One page of the caller's streams, in id order.")
    next: str | None = Field(
        description="Pass as `after` for the next page (the last id of this one); null: no stream follows."
    )
