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
from app.families.anomaly.schemas import AlarmRegion, Sampling
from app.families.anomaly.times import to_seconds

MAX_GAPS_LISTED = 100


@dataclass(frozen=True)
class Points:
    """Per point, no NaN anywhere: a warm-up point has score 0, no alarm, and its own value as expected and band."""

    status: list[str]  # "scored" or "warming_up"
    scores: list[float]
    is_anomaly: list[bool]  # the points that raise an alarm
    expected: list[float]
    lower: list[float]
    upper: list[float]
    direction: list[str]  # "spike" above the band, "dip" below it, "none" inside it


def points(scored: Scored, values: np.ndarray) -> Points:
    warm = scored.warming_up

    def fill(scored_value: np.ndarray, warm_value: np.ndarray | float) -> np.ndarray:
        return np.asarray(np.where(warm, warm_value, scored_value))

    expected, lower, upper = (fill(a, values) for a in (scored.expected, scored.lower, scored.upper))
    direction = np.where(values > upper, "spike", np.where(values < lower, "dip", "none"))
    return Points(
        status=np.where(warm, "warming_up", "scored").tolist(),
        scores=fill(scored.score, 0.0).tolist(),
        is_anomaly=scored.alarm.tolist(),
        expected=expected.tolist(),
        lower=lower.tolist(),
        upper=upper.tolist(),
        direction=direction.tolist(),
    )


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


def min_length(causal: bool, config: DetectorConfig = DEFAULT) -> int:
    """Fewest points a series needs: one scored point after the warm-up; non-causal mode also scores the warm-up
    from the points after it, so it needs a second warm-up's worth."""
    return config.warmup + 1 if causal else 2 * config.warmup


def check_length(length: int, causal: bool, config: DetectorConfig = DEFAULT) -> None:
    """422 for a series too short to score."""
    needed = min_length(causal, config)
    if length < needed:
        raise InvalidInput(
            f"The series has {length} values; at least {needed} are needed "
            f"({config.warmup} to learn the series from{'' if causal else ', twice in non-causal mode'}).",
            {"min_length": needed, "length": length},
        )


def score_series(
    values: np.ndarray, sensitivity: float = 0.5, causal: bool = True, config: DetectorConfig = DEFAULT
) -> Scored:
    """Causal: every point from the points before it (the first config.warmup are warm-up). Non-causal: the
    warm-up points are scored too, by the detector run backwards in time from the end of the series."""
    check_length(len(values), causal, config)
    forward = Detector(config, sensitivity).update(DetectorState(), values)
    if causal:
        return forward
    backward = Detector(config, sensitivity).update(DetectorState(), values[::-1])
    warm = forward.warming_up
    parts = [np.where(warm, getattr(backward, name)[::-1], getattr(forward, name)) for name in Scored.FIELDS]
    return Scored(*parts)


def check_timestamps(timestamps: list[datetime]) -> Sampling:
    """422 unless strictly increasing; else the sampling report: median step, whether it is regular, the gaps."""
    seconds = np.array([to_seconds(t) for t in timestamps], dtype=np.float64)
    steps = np.diff(seconds)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate" if steps[bad[0]] == 0 else "earlier than the one before it"
        raise InvalidInput(
            f"Timestamps must be strictly increasing: timestamp {i} ({timestamps[i].isoformat()}) is {kind}.",
            {"index": i},
        )
    if not steps.size:
        return Sampling(step_seconds=None, regular=True, gaps=[])
    step = float(np.median(steps))
    gap_at = np.flatnonzero(steps > 1.5 * step)
    gaps = [
        {
            "after": int(i),
            "start_time": timestamps[i].isoformat(),
            "end_time": timestamps[i + 1].isoformat(),
            "missing_points": int(round(steps[i] / step)) - 1,
        }
        for i in gap_at[:MAX_GAPS_LISTED]
    ]
    regular = bool(np.all(np.abs(steps - step) <= 0.01 * step))
    return Sampling.model_validate({"step_seconds": step, "regular": regular, "gaps": gaps, "gap_count": gap_at.size})


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
