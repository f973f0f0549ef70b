"""A causal anomaly detector for any series, learned from the series' own past: pure numpy, no labels, no training.

For each point, the context of the last `embed` values (the point included) is compared with every context in
the last `history` points; the distance to the nearest one, divided by the median of those nearest distances over
the last `baseline` points, is the point's score: "how many times further from anything seen lately than usual".
The ratio makes the score scale-free (a series around 1e6 and one around 1e-3 score alike) and the median keeps an
anomaly from hiding itself in its own baseline. An alarm is raised when

* the score is at least the threshold and the highest of the last `record` points (a new surprise, not the tail of
  one already reported), or the value leaves every value seen so far by more than `spatial_tolerance` of their
  range (what a context comparison cannot see: a new level reached smoothly);
* or the value is further from its forecast than `onset` times the robust scale of recent forecast errors (a
  jump the context comparison sees only once several points of it are in the context; 0: off);
* and no alarm was raised in the last `refractory` points (one alarm per event, not one per point), unless the
  event of the last alarm is over: the points after it have been undisturbed (score under the threshold, value
  inside the seen range and near its forecast) for `quiet` points in a row (0: off), plus `quiet_growth` x the
  event's length (from its alarm to its last disturbed point; 0: a fixed `quiet`), so a long disturbed stretch
  needs a longer calm before it is over than a spike does. An event's own scores do not count in the record a
  later alarm must beat, so a second event close after a bigger one is still found.

A young detector scores too: after `warmup` points it alarms, with limits (threshold, tolerance, onset) widened
by `youth` x the fraction of `young` points still to come (1 + youth at the start, 1 from `young` points on), so
a short series or an event soon after the start is not lost in the warm-up. A missing value (NaN) is skipped: it
is reported as missing and the detector goes on from the points around it.

`sensitivity` in [0, 1] (0.5 by default) moves the threshold, tolerance and onset together; see `alarm_limits`.
The expected value is what followed the nearest past context of the previous `embed - 1` values (a nearest-
neighbour forecast); the band is expected +- threshold x the robust scale of recent forecast errors.

Every point is scored from the state before it, and one state serves a whole series or a stream fed in parts:
`Detector.update` on [a, b] gives exactly what `update` on a then on b gives.
"""

from __future__ import annotations

import io
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_TO_SIGMA = 1.4826
OVER = 2**52  # `calm` of an event that is over (exact as a float; stays over however long it lasted)


@dataclass(frozen=True)
class DetectorConfig:
    """The defaults were chosen without NAB's labels: searched on a synthetic labelled corpus of user-like series
    scored by NAB's rules (bench/anomaly_synthetic.py), then threshold and tolerance raised together (x1.54) until
    the alarm rate on NAB's series, unlabelled, was no more than the searched settings' rate on that corpus.
    `python -m bench.anomaly_defaults --seed 0 --series 100 --calibrate ../shared/data/nab/data` prints them. The
    young detector (warmup, young, youth) was chosen by bench/anomaly_events.py on the synthetic corpora, whose
    short series often have an event inside the old 150-point warm-up: models/nearest_context/5. The settings
    before those choices, which were picked on NAB's labelled series, are models/nearest_context/1.
    """

    embed: int = 16  # values in a context (80 minutes of five-minute points)
    history: int = 1000  # points searched for the nearest context (about three days of five-minute points)
    baseline: int = 3000  # past nearest distances whose median is the "usual" distance
    record: int = 300  # an alarm's score must be the highest of this many points
    record_halflife: float = 2000.0  # ... once each is halved every this many points of age (0: never)
    refractory: int = 100  # points after an alarm during which no new alarm is raised
    warmup: int = 100  # points learned before the first score (v1-v4: 150, NAB's probation on its shortest series)
    threshold: float = 3.856  # the score an alarm needs at sensitivity 0.5
    spatial_tolerance: float = 0.0771  # fraction of the seen range a value must leave it by, at sensitivity 0.5
    min_distance: float = 1e-3  # distance floor per value, in units of the warm-up range (flat series)
    block: int = 256  # points whose distances are computed in one matrix product
    young: int = 300  # points before which the limits are widened (0: off, as in v1-v4)
    youth: float = 1.0  # how much wider at the start (x(1 + youth), falling linearly to x1 at `young` points)
    # Off at these values (the v1, v2 and v5 settings): see the module docstring.
    quiet: int = 0  # undisturbed points in a row that end an event (a new alarm may then follow at once)
    onset: float = 0.0  # forecast errors over this many robust scales are an alarm (a sudden jump)
    quiet_growth: float = 0.0  # the calm that ends an event also grows by this x the event's length


DEFAULT = DetectorConfig()


def alarm_limits(config: DetectorConfig, sensitivity: float) -> tuple[float, float]:
    """(score threshold, spatial tolerance) at a sensitivity in [0, 1]: 0.5 gives the configured pair, each step of
    0.25 halves (more sensitive) or doubles (less) both."""
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError(f"sensitivity must be in [0, 1], got {sensitivity}")
    factor = 4.0 ** (1.0 - 2.0 * sensitivity)
    return config.threshold * factor, config.spatial_tolerance * factor


@dataclass
class DetectorState:
    """Everything a series' next point is scored from; `to_bytes`/`from_bytes` round-trip it exactly."""

    seen: int = 0  # points fed so far
    offset: float = 0.0  # values are scored as (value - offset) / unit, both fixed at the end of warm-up
    unit: float = 1.0
    low: float = np.inf  # the smallest and largest value seen
    high: float = -np.inf
    last_alarm: int = -(10**9)  # index of the last alarm
    calm: int = 0  # undisturbed points in a row since then
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the last history + embed raw values
    distances: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the last `baseline` nearest distances
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the last `record` scores
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the last `baseline` |forecast errors|

    SCALARS = ("seen", "offset", "unit", "low", "high", "last_alarm", "calm")
    ARRAYS = ("tail", "distances", "scores", "errors")

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        scalars = np.array([float(getattr(self, k)) for k in self.SCALARS])
        np.savez(buffer, scalars=scalars, **{k: getattr(self, k) for k in self.ARRAYS})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DetectorState:
        with np.load(io.BytesIO(data)) as f:
            scalars = [float(v) for v in f["scalars"]] + [0.0]  # a state saved before `calm` has none: 0
            seen, offset, unit, low, high, last_alarm, calm = scalars[: len(cls.SCALARS)]
            arrays = (f[k] for k in cls.ARRAYS)
            return cls(int(seen), offset, unit, low, high, int(last_alarm), int(calm), *arrays)


@dataclass(frozen=True)
class Scored:
    """Per point of one update: NaN score/expected/band for warm-up points (`warming_up` True) and missing values
    (`missing` True)."""

    warming_up: np.ndarray  # bool
    score: np.ndarray
    alarm: np.ndarray  # bool
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    missing: np.ndarray  # bool

    FIELDS: ClassVar[tuple[str, ...]] = ("warming_up", "score", "alarm", "expected", "lower", "upper", "missing")

    @classmethod
    def empty(cls, n: int) -> Scored:
        nan = np.full(n, np.nan)
        no = np.zeros(n, dtype=bool)
        return cls(no.copy(), nan.copy(), no.copy(), nan.copy(), nan.copy(), nan.copy(), no.copy())


def _keep(a: np.ndarray, value: float, limit: int) -> np.ndarray:
    return np.append(a[-limit + 1 :] if limit > 1 else a[:0], value)


class Detector:
    """Scores points one state at a time; holds only its configuration and sensitivity."""

    def __init__(self, config: DetectorConfig = DEFAULT, sensitivity: float = 0.5) -> None:
        self.config = config
        self.threshold, self.tolerance = alarm_limits(config, sensitivity)
        self.onset = config.onset * 4.0 ** (1.0 - 2.0 * sensitivity)  # moved by the sensitivity as the other two
        # The bar a new alarm's score must reach: past scores, each halved every `record_halflife` points of age.
        age = np.arange(config.record, 0, -1)
        self.decay = 0.5 ** (age / config.record_halflife) if config.record_halflife > 0 else np.ones(config.record)

    def update(self, state: DetectorState, values: np.ndarray) -> Scored:
        """Score `values` (appended after the state's points; NaN: missing, skipped) and advance `state` past them."""
        values = np.asarray(values, dtype=np.float64)
        present = ~np.isnan(values)
        if present.all():
            return self._update(state, values)
        inner = self._update(state, values[present])
        out = Scored.empty(len(values))
        for name in Scored.FIELDS:
            getattr(out, name)[present] = getattr(inner, name)
        out.missing[:] = ~present
        return out

    def youth_factor(self, index: int) -> float:
        """How much wider the limits are at the point of this index (1 once the detector is `young` points old)."""
        c = self.config
        return 1.0 + c.youth * (c.young - index) / c.young if index < c.young else 1.0

    def over(self, state: DetectorState, index: int) -> bool:
        """Whether the last alarm's event is over before the point of this index: `quiet` calm points in a row,
        plus `quiet_growth` x the event's length (from the alarm to its last disturbed point)."""
        c = self.config
        length = index - state.calm - 1 - state.last_alarm
        return state.calm >= c.quiet + c.quiet_growth * length

    def _update(self, state: DetectorState, values: np.ndarray) -> Scored:
        c = self.config
        n = len(values)
        out = Scored.empty(n)
        done = 0
        if state.seen >= c.warmup and not state.distances.size:  # warmed up under a longer warm-up (an older
            self._settle(state)  # version's stream): its scale is fixed now, from the points it has
        while done < n:
            if state.seen < c.warmup:
                take = min(n - done, c.warmup - state.seen)
                self._learn(state, values[done : done + take])
                out.warming_up[done : done + take] = True
            else:
                take = min(n - done, c.block)
                self._score_block(state, values[done : done + take], out, done)
            done += take
        return out

    def _learn(self, state: DetectorState, values: np.ndarray) -> None:
        """Warm-up: keep the values; at its end fix the scale and seed the distance baseline."""
        c = self.config
        state.tail = np.concatenate([state.tail, values])[-(c.history + c.embed) :]
        state.low = min(state.low, float(values.min()))
        state.high = max(state.high, float(values.max()))
        state.seen += len(values)
        if state.seen >= c.warmup:
            self._settle(state)

    def _settle(self, state: DetectorState) -> None:
        """The end of the warm-up: fix the scale from the values kept and seed the distance baseline."""
        c = self.config
        state.offset = float(np.median(state.tail))
        spread = state.high - state.low
        state.unit = spread if spread > 0 else max(abs(state.offset), 1.0)
        x = (state.tail - state.offset) / state.unit
        first = 2 * c.embed - 1
        if len(x) > first:
            distances, expected = self._nearest(x, np.arange(first, len(x)))
            state.distances = distances[-c.baseline :]
            state.errors = np.abs(x[first:] - expected)[-c.baseline :]

    def _nearest(self, x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each local index i in `rows` of normalised `x`: the distance from the context ending at i to the
        nearest context ending at j in [i - history, i - embed], and x[j*] where j* is nearest on the previous
        embed - 1 values only (the forecast of x[i] from its past)."""
        c = self.config
        m = c.embed
        contexts = sliding_window_view(x, m)  # contexts[k] ends at k + m - 1
        ends = rows - (m - 1)
        lo = max(0, int(ends[0]) - c.history)
        hi = int(ends[-1]) - m + 1
        prefix_q, prefix_c = contexts[ends, :-1], contexts[lo:hi, :-1]
        sq_q, sq_c = (prefix_q**2).sum(1), (prefix_c**2).sum(1)
        prefix = np.maximum(sq_q[:, None] + sq_c[None, :] - 2.0 * prefix_q @ prefix_c.T, 0.0)
        candidate = np.arange(lo, hi)[None, :]
        valid = (candidate <= ends[:, None] - m) & (candidate >= ends[:, None] - c.history)
        prefix[~valid] = np.inf
        full = prefix + (contexts[ends, -1][:, None] - contexts[lo:hi, -1][None, :]) ** 2
        floor = c.min_distance * np.sqrt(m)
        distances = np.maximum(np.sqrt(full.min(1)), floor)
        expected = contexts[lo:hi, -1][prefix.argmin(1)]
        return distances, expected

    def _score_block(self, state: DetectorState, values: np.ndarray, out: Scored, at: int) -> None:
        c = self.config
        keep = c.history + c.embed
        x_all = (np.concatenate([state.tail, values]) - state.offset) / state.unit
        rows = np.arange(len(state.tail), len(x_all))
        distances, expected = self._nearest(x_all, rows)
        # A state saved under longer settings (a stream from before the served settings changed) is cut to these.
        state.scores = state.scores[-c.record :]
        recent_distances, recent_errors = (
            RollingMedian(state.distances[-c.baseline :], c.baseline),
            RollingMedian(state.errors[-c.baseline :], c.baseline),
        )
        for k, value in enumerate(values):
            i = at + k
            index = state.seen
            wide = self.youth_factor(index)
            threshold = self.threshold * wide
            typical = recent_distances.median() if recent_distances else float(distances[k])
            score = float(distances[k]) / typical
            forecast = float(expected[k])
            spread = MAD_TO_SIGMA * recent_errors.median() if recent_errors else 0.0
            spread = max(spread, c.min_distance)
            error = abs(float(x_all[rows[k]]) - forecast)
            record = not state.scores.size or score >= float((state.scores * self.decay[-state.scores.size :]).max())
            margin = self.tolerance * wide * (state.high - state.low)
            outside = margin > 0 and (value > state.high + margin or value < state.low - margin)
            jump = self.onset > 0 and error > self.onset * wide * spread
            disturbed = score >= threshold or outside or jump
            ended = c.quiet > 0 and (state.last_alarm < 0 or self.over(state, index))  # no event open
            alarm = ((score >= threshold and record) or outside or jump) and (
                index - state.last_alarm > c.refractory or ended
            )
            just_ended = False
            if alarm:
                state.last_alarm, state.calm = index, 0
            elif c.quiet > 0 and not ended:
                state.calm = 0 if disturbed else state.calm + 1
                just_ended = self.over(state, index + 1)
                if just_ended and c.quiet_growth > 0:
                    state.calm = OVER
            out.score[i] = score
            out.alarm[i] = alarm
            out.expected[i] = forecast * state.unit + state.offset
            out.lower[i] = (forecast - threshold * spread) * state.unit + state.offset
            out.upper[i] = (forecast + threshold * spread) * state.unit + state.offset
            recent_distances.push(float(distances[k]))
            recent_errors.push(error)
            state.scores = _keep(state.scores, score, c.record)
            if just_ended:  # the event's own scores are no record for the next event to beat
                state.scores[-(index - state.last_alarm + 1) :] = 0.0
            state.low, state.high = min(state.low, value), max(state.high, value)
            state.seen += 1
        state.distances, state.errors = recent_distances.array(), recent_errors.array()
        state.tail = np.concatenate([state.tail, values])[-keep:]


class RollingMedian:
    """The last `size` values in arrival order and sorted, so each median is a lookup (np.median's value exactly)."""

    def __init__(self, values: np.ndarray, size: int) -> None:
        self.size = size
        self.fifo = deque(float(v) for v in values)
        self.sorted = sorted(self.fifo)

    def __bool__(self) -> bool:
        return bool(self.fifo)

    def median(self) -> float:
        n, s = len(self.sorted), self.sorted
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0

    def push(self, value: float) -> None:
        self.fifo.append(value)
        insort(self.sorted, value)
        if len(self.fifo) > self.size:
            del self.sorted[bisect_left(self.sorted, self.fifo.popleft())]

    def array(self) -> np.ndarray:
        return np.array(self.fifo, dtype=np.float64)
