"""One series through the per-series detector, as a person reads it: per point, alarm regions, sampling report.

Framework-free: the runtime (app/families/anomaly/context_runtime.py) and the streams route
(app/http/api/anomaly_streams.py) both answer with what this module computes from `detector.Scored`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from app.errors import InvalidInput
from app.families.anomaly.detector import DEFAULT, Detector, DetectorConfig, DetectorState, Scored
from app.families.anomaly.schemas import AlarmRegion, Missing, Sampling
from app.families.anomaly.times import to_iso, to_seconds

MAX_LISTED = 100  # gaps, repeated timestamps or missing values listed at most


@dataclass(frozen=True)
class Points:
    """Per point, no NaN anywhere: a warm-up point has score 0, no alarm, and its own value as expected and band;
    a missing value has score 0, no alarm and null expected and band."""

    status: list[str]  # "scored", "warming_up" or "missing"
    scores: list[float]
    is_anomaly: list[bool]  # the points that raise an alarm
    expected: list[float | None]
    lower: list[float | None]
    upper: list[float | None]
    direction: list[str]  # "spike" above the band, "dip" below it, "none" inside it (or missing)


def _nullable(a: np.ndarray, missing: np.ndarray) -> list[float | None]:
    out: list[float | None] = a.tolist()
    for i in np.flatnonzero(missing):
        out[i] = None
    return out


def points(scored: Scored, values: np.ndarray) -> Points:
    warm, missing = scored.warming_up, scored.missing

    def fill(scored_value: np.ndarray, warm_value: np.ndarray | float) -> np.ndarray:
        return np.asarray(np.where(warm, warm_value, scored_value))

    expected, lower, upper = (fill(a, values) for a in (scored.expected, scored.lower, scored.upper))
    with np.errstate(invalid="ignore"):
        direction = np.where(values > upper, "spike", np.where(values < lower, "dip", "none"))
    status = np.where(missing, "missing", np.where(warm, "warming_up", "scored"))
    return Points(
        status=status.tolist(),
        scores=np.where(missing, 0.0, fill(scored.score, 0.0)).tolist(),
        is_anomaly=scored.alarm.tolist(),
        expected=_nullable(expected, missing),
        lower=_nullable(lower, missing),
        upper=_nullable(upper, missing),
        direction=direction.tolist(),
    )


def missing_report(scored: Scored, at: int = 0) -> Missing:
    """The missing values' count and first indices (offset by `at`)."""
    where = np.flatnonzero(scored.missing)
    return Missing(count=int(where.size), indices=(where[:MAX_LISTED] + at).tolist())


def alarm_regions(alarm: np.ndarray, score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(first, last) index of each alarm and the points right after it whose score stays at or over the threshold;
    overlapping regions merge."""
    high = np.nan_to_num(score, nan=0.0) >= threshold
    regions: list[tuple[int, int]] = []
    for start in np.flatnonzero(alarm):
        end = int(start)
        while end + 1 < len(high) and high[end + 1]:
            end += 1
        if regions and start <= regions[-1][1] + 1:
            regions[-1] = (regions[-1][0], max(regions[-1][1], end))
        else:
            regions.append((int(start), end))
    return regions


def as_values(values: list[float | None]) -> np.ndarray:
    """A request's values as float64, NaN for each null (a missing value)."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def as_table(rows: list[list[float | None]]) -> np.ndarray:
    """A request's rows (several channels) as a float64 rows x channels table, NaN for each null."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


def min_length(causal: bool, config: DetectorConfig = DEFAULT) -> int:
    """Fewest points a series needs: one scored point after the warm-up; non-causal mode also scores the warm-up
    from the points after it, so it needs a second warm-up's worth."""
    return config.warmup + 1 if causal else 2 * config.warmup


def check_length(length: int, causal: bool, config: DetectorConfig = DEFAULT, missing: int = 0) -> None:
    """422 for a series too short to score (its missing values do not count)."""
    needed = min_length(causal, config)
    if length - missing < needed:
        of = f" ({missing} of them missing)" if missing else ""
        detail = {"min_length": needed, "length": length} | ({"missing": missing} if missing else {})
        raise InvalidInput(
            f"The series has {length} values{of}; at least {needed} present are needed "
            f"({config.warmup} to learn the series from{'' if causal else ', twice in non-causal mode'}).",
            detail,
        )


def score_series(
    values: np.ndarray, sensitivity: float = 0.5, causal: bool = True, config: DetectorConfig = DEFAULT
) -> Scored:
    """Causal: every point from the points before it (the first config.warmup are warm-up). Non-causal: the
    warm-up points are scored too, by the detector run backwards in time from the end of the series."""
    check_length(len(values), causal, config, int(np.isnan(values).sum()))
    forward = Detector(config, sensitivity).update(DetectorState(), values)
    if causal:
        return forward
    backward = Detector(config, sensitivity).update(DetectorState(), values[::-1])
    warm = forward.warming_up
    parts = [np.where(warm, getattr(backward, name)[::-1], getattr(forward, name)) for name in Scored.FIELDS]
    return Scored(*parts)


def check_timestamps(timestamps: list[datetime], at: int = 0, after: float | None = None) -> Sampling:
    """422 at the first timestamp earlier than the one before it (or than `after`, a stream's last time, in
    seconds); else the sampling report: median step, whether it is regular, the gaps and the repeated timestamps
    (a clock put back, e.g. an hour of local time at a daylight-saving change, or a late duplicate). Indices are
    offset by `at`."""
    seconds = np.array([to_seconds(t) for t in timestamps], dtype=np.float64)
    before = np.concatenate([[after], seconds]) if after is not None else seconds
    steps = np.diff(before)
    bad = np.flatnonzero(steps < 0)
    if bad.size:
        i = int(bad[0]) + (0 if after is not None else 1)
        stream = after is not None and i == 0
        before_it = "the stream's last one" if stream else "the one before it"
        raise InvalidInput(
            f"Timestamps must not go backwards: timestamp {i + at} ({timestamps[i].isoformat()}) is earlier than "
            f"{before_it} (a repeated timestamp is accepted).",
            {"index": i + at} | ({"last_time": to_iso(after)} if stream and after is not None else {}),
        )
    repeats = np.flatnonzero(steps == 0) + (0 if after is not None else 1)
    duplicates = [{"index": int(i) + at, "time": timestamps[i].isoformat()} for i in repeats[:MAX_LISTED]]
    steps = np.diff(seconds)
    moving = steps[steps > 0]
    if not moving.size:
        return Sampling.model_validate(
            {
                "step_seconds": None,
                "regular": not steps.size,
                "gaps": [],
                "duplicates": duplicates,
                "duplicate_count": repeats.size,
            }
        )
    step = float(np.median(moving))
    gap_at = np.flatnonzero(steps > 1.5 * step)
    gaps = [
        {
            "after": int(i) + at,
            "start_time": timestamps[i].isoformat(),
            "end_time": timestamps[i + 1].isoformat(),
            "missing_points": int(min(round(steps[i] / step), 2**53)) - 1,
        }
        for i in gap_at[:MAX_LISTED]
    ]
    regular = bool(np.all(np.abs(steps - step) <= 0.01 * step))
    return Sampling.model_validate(
        {
            "step_seconds": step,
            "regular": regular,
            "gaps": gaps,
            "gap_count": gap_at.size,
            "duplicates": duplicates,
            "duplicate_count": repeats.size,
        }
    )


def regions_with_times(regions: list[tuple[int, int]], times: list[datetime] | None, at: int = 0) -> list[AlarmRegion]:
    """Regions as the API gives them: indices offset by `at`, times when the request had them."""
    return [
        AlarmRegion(
            start=a + at,
            end=b + at,
            start_time=times[a].isoformat() if times else None,
            end_time=times[b].isoformat() if times else None,
        )
        for a, b in regions
    ]
