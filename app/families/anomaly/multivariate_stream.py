"""A stream of several aligned channels, fed a part at a time and scored by multivariate.py's rule: every part's
rows get exactly the answers (scores, alarm rows, and in the end each alarm's kind and channels) that the whole
series sent at once to POST /predict/anomaly (causal mode) gets for them. Framework-free; the stream store
(streams.py) keeps a ChannelsState per stream.

* each channel has its own detector state (Detector.update on parts gives the whole series' answers);
* the first `warmup` rows are kept until they are all in: then the coupled channels and each channel's warm-up
  mean and standard deviation are fixed from them (as the batch rule fixes them from the series' first `warmup`
  rows) and each coupled channel's departure detector learns those rows' departures; from then on each row's
  departures are scored as it comes (one detector step per coupled channel, not a run over the series);
* an alarm's row is known when it comes, but the channels that drove it are those that alarmed in its event's JOIN
  rows, and their scores the highest in those rows: a part that reaches into an event reports its alarm as it
  stands, `final` once the event's JOIN rows are all in (then kind, channels and scores are the batch answer's).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.families.anomaly import multivariate
from app.families.anomaly.detector import Detector, DetectorConfig, DetectorState, Scored

KINDS = ("channels", "correlation")  # the rows of ChannelsState.hits and .tops


@dataclass
class ChannelsState:
    """Everything a multichannel stream's next rows are scored from; `to_bytes`/`from_bytes` round-trip it."""

    channels: list[DetectorState]
    head: np.ndarray  # the rows received while fewer than the warm-up (then none: 0 rows)
    coupled: bool = False  # the peers are fixed (the warm-up rows are all in)
    signs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [c, p]: peer p's sign for channel c (0: none)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # each channel's over the warm-up rows
    std: np.ndarray = field(default_factory=lambda: np.zeros(0))
    departures: dict[int, DetectorState] = field(default_factory=dict)  # a coupled channel's departure detector
    event: int = -(10**9)  # the first row of the last event
    event_time: str = ""  # its timestamp ("" without)
    hits: np.ndarray = field(default_factory=lambda: np.zeros((2, 0), dtype=bool))  # [kind, c] alarmed in the event
    tops: np.ndarray = field(default_factory=lambda: np.zeros((2, 0)))  # [kind, c] highest score in its JOIN rows

    @classmethod
    def new(cls, width: int) -> ChannelsState:
        return cls(
            [DetectorState() for _ in range(width)],
            np.zeros((0, width)),
            hits=np.zeros((2, width), dtype=bool),
            tops=np.zeros((2, width)),
        )

    def peers(self) -> dict[int, list[tuple[int, float]]]:
        """multivariate.coupled's answer for the warm-up rows ({} until they are in)."""
        return {
            c: [(int(p), float(self.signs[c, p])) for p in np.flatnonzero(self.signs[c])]
            for c in range(len(self.signs))
            if self.signs[c].any()
        }

    def to_bytes(self) -> bytes:
        arrays: dict[str, Any] = {f"channel{c}": _raw(s) for c, s in enumerate(self.channels)}
        arrays |= {f"departure{c}": _raw(s) for c, s in self.departures.items()}
        buffer = io.BytesIO()
        np.savez(
            buffer,
            head=self.head,
            scalars=np.array([float(self.coupled), float(self.event)]),
            event_time=np.array(self.event_time),
            signs=self.signs,
            mean=self.mean,
            std=self.std,
            hits=self.hits,
            tops=self.tops,
            **arrays,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChannelsState:
        with np.load(io.BytesIO(data)) as f:
            width = f["head"].shape[1]
            coupled, event = f["scalars"]
            return cls(
                [DetectorState.from_bytes(f[f"channel{c}"].tobytes()) for c in range(width)],
                f["head"],
                bool(coupled),
                f["signs"],
                f["mean"],
                f["std"],
                {c: DetectorState.from_bytes(f[k].tobytes()) for c in range(width) if (k := f"departure{c}") in f},
                int(event),
                str(f["event_time"]),
                f["hits"],
                f["tops"],
            )


def _raw(state: DetectorState) -> np.ndarray:
    return np.frombuffer(state.to_bytes(), np.uint8)


@dataclass(frozen=True)
class ReportedAlarm:
    alarm: multivariate.Alarm  # its index is the stream's row
    time: str | None  # its row's timestamp, when the points that brought it had timestamps
    final: bool  # the event's JOIN rows are all in: kind, channels and scores will not change


@dataclass(frozen=True)
class ChannelsScored:
    """One part's rows, as multivariate.Combined gives them for the whole series."""

    channels: list[Scored]  # each channel alone, in the stream's channel order
    status: list[str]
    score: np.ndarray
    alarm: np.ndarray  # bool: the rows that start an event
    alarms: list[ReportedAlarm]  # every event that reaches into these rows, as it stands after them
    peers: dict[str, list[str]]  # the coupled channels ({} while the stream is in its warm-up rows)


def channels_for(
    series_id: str, stored: list[str] | None, exists: bool, width: int | None, sent: list[str] | None
) -> list[str] | None:
    """The channels of a stream's points (None: one channel, values as numbers), fixed by its first points: a
    422 when points of `width` values a row (None: numbers) named `sent` (None: the stream's, or "0", "1", ... for a
    new stream) do not fit the stream's `stored` channels."""
    if not exists:
        return None if width is None else sent or [str(c) for c in range(width)]
    detail = {"series_id": series_id, "channels": stored}
    if stored is None and width is not None:
        raise InvalidInput(
            f"Stream {series_id!r} has one channel (values as numbers, fixed by its first points); these points are "
            f"rows of {width} values: send numbers, or rows to a new stream.",
            detail,
        )
    if stored is not None and width is None:
        raise InvalidInput(
            f"Stream {series_id!r} has {len(stored)} channels {stored[:8]} (fixed by its first points); these points "
            f"are numbers: send rows of {len(stored)} values.",
            detail,
        )
    if stored is not None and width != len(stored):
        raise InvalidInput(
            f"Stream {series_id!r} has {len(stored)} channels {stored[:8]} (fixed by its first points); these rows "
            f"have {width} values.",
            detail | {"width": width},
        )
    if stored is not None and sent is not None and sent != stored:
        raise InvalidInput(
            f"Stream {series_id!r} has channels {stored[:8]} (fixed by its first points, in that order); these "
            f"points name {sent[:8]}: send the stream's, or no `channels`.",
            detail | {"sent": sent},
        )
    return stored


def _couple(state: ChannelsState, config: DetectorConfig, departure_sensitivity: float) -> None:
    """The warm-up rows are in: fix the peers and the standardisation, and let the departures learn those rows
    (the departure detectors' own warm-up: none of these rows is scored by them)."""
    head, width = state.head, state.head.shape[1]
    state.mean, state.std = multivariate.standardisation(head)
    state.signs = np.zeros((width, width))
    detector = Detector(multivariate.departure_config(config), departure_sensitivity)
    for c, peers in multivariate.coupled(head, config.warmup).items():
        for p, sign in peers:
            state.signs[c, p] = sign
        state.departures[c] = DetectorState()
        detector.update(state.departures[c], multivariate.departure_of(head, c, peers, state.mean, state.std))
    state.head, state.coupled = head[:0], True


def update(
    state: ChannelsState,
    values: np.ndarray,
    at: int,
    names: list[str],
    sensitivity: float,
    config: DetectorConfig,
    times: list[str] | None = None,
) -> ChannelsScored:
    """Score rows x channels `values` (NaN: missing), the stream's rows from index `at` (`times`: their ISO
    timestamps), and advance `state` past them."""
    rows, width = values.shape
    config = multivariate.rows_config(config, width)
    wide = multivariate.widening(width)
    each = Detector(multivariate.channel_config(config, width), sensitivity)
    channels = [multivariate.narrowed(each.update(state.channels[c], values[:, c]), wide) for c in range(width)]
    at_departures, wider = multivariate.departure_scale(config, sensitivity)
    departure_scores, departure_alarms = np.zeros((width, rows)), np.zeros((width, rows), dtype=bool)
    start = 0  # the first of these rows scored by the departures: the rows after the warm-up
    if not state.coupled:
        start = min(rows, config.warmup - at)
        state.head = np.concatenate([state.head, values[:start]])
        if len(state.head) >= config.warmup:
            _couple(state, config, at_departures)
    if state.coupled and start < rows:
        detector = Detector(multivariate.departure_config(config), at_departures)
        for c, peers in state.peers().items():
            d = multivariate.departure_of(values[start:], c, peers, state.mean, state.std)
            scored = detector.update(state.departures[c], d)
            departure_scores[c, start:] = multivariate.scores_of(multivariate.narrowed(scored, wider))
            departure_alarms[c, start:] = scored.alarm
    scores = np.stack([[multivariate.scores_of(s) for s in channels], departure_scores])  # [kind, c, row]
    hits = np.stack([[s.alarm for s in channels], departure_alarms])
    alarm = np.zeros(rows, dtype=bool)
    alarms: list[ReportedAlarm] = []
    for j in range(rows):
        i = at + j
        if hits[:, :, j].any() and i - state.event >= multivariate.JOIN:
            if state.event + multivariate.JOIN > at:  # the last event reached into these rows: it is complete
                alarms.append(_as_it_stands(state, names, final=True))
            state.event, state.event_time = i, times[j] if times else ""
            state.hits[:], state.tops[:] = False, 0.0
            alarm[j] = True
        if i - state.event < multivariate.JOIN:
            state.tops = np.maximum(state.tops, scores[:, :, j])
            state.hits |= hits[:, :, j]
    if state.event + multivariate.JOIN > at:
        alarms.append(_as_it_stands(state, names, final=state.event + multivariate.JOIN <= at + rows))
    return ChannelsScored(
        channels=channels,
        status=multivariate.row_status(channels),
        score=scores.max(axis=(0, 1)),
        alarm=alarm,
        alarms=alarms,
        peers={names[c]: [names[p] for p, _ in peers] for c, peers in state.peers().items()},
    )


def _as_it_stands(state: ChannelsState, names: list[str], final: bool) -> ReportedAlarm:
    by_kind = {
        kind: {names[c]: float(state.tops[k, c]) for c in np.flatnonzero(state.hits[k])} for k, kind in enumerate(KINDS)
    }
    return ReportedAlarm(multivariate.named(state.event, names, by_kind), state.event_time or None, final)
