"""app/families/anomaly/detector.py: any scale, causal, one state for a whole series or a stream fed in parts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.families.anomaly.detector import DEFAULT, Detector, DetectorState, alarm_limits
from tests.support.seasonal import EVENTS, FLAT_LENGTH, STEPS_PER_DAY, seasonal

SCALES = [(1.0, 0.0), (0.01, 0.0), (5e5, 1e6), (1.0, -3.0), (1e-3, 7.0)]


def run(values: np.ndarray, sensitivity: float = 0.5):
    return Detector(sensitivity=sensitivity).update(DetectorState(), values)


def found(alarms: np.ndarray, at: int, within: int) -> bool:
    return bool(alarms[at : at + within].any())


@pytest.mark.parametrize(("scale", "offset"), SCALES)
def test_finds_spike_dip_and_flat_line_at_any_scale_without_false_alarms(scale: float, offset: float) -> None:
    out = run(seasonal(scale, offset))
    alarms = out.alarm
    assert found(alarms, EVENTS["spike"], 2) and found(alarms, EVENTS["dip"], 2)
    assert found(alarms, EVENTS["flat"], FLAT_LENGTH + DEFAULT.embed)
    assert alarms.sum() == 3
    assert not run(seasonal(scale, offset, events=False)).alarm.any()


def test_scores_do_not_depend_on_scale_or_offset() -> None:
    base = run(seasonal())
    for scale, offset in SCALES[1:]:
        other = run(seasonal(scale, offset))
        np.testing.assert_allclose(other.score, base.score, rtol=1e-6)
        np.testing.assert_allclose(other.expected, base.expected * scale + offset, rtol=1e-6, atol=1e-9 * scale)


def test_expected_band_and_direction_of_the_events() -> None:
    values = seasonal()
    out = run(values)
    spike, dip = EVENTS["spike"], EVENTS["dip"]
    assert values[spike] > out.upper[spike] and values[dip] < out.lower[dip]
    normal = np.arange(STEPS_PER_DAY * 5, STEPS_PER_DAY * 10)
    inside = (values[normal] >= out.lower[normal]) & (values[normal] <= out.upper[normal])
    assert inside.mean() > 0.99


def test_warm_up_points_are_marked_and_unscored() -> None:
    out = run(seasonal()[:400])
    assert out.warming_up[: DEFAULT.warmup].all() and not out.warming_up[DEFAULT.warmup :].any()
    assert np.isnan(out.score[: DEFAULT.warmup]).all() and np.isfinite(out.score[DEFAULT.warmup :]).all()


def test_stream_in_parts_equals_one_batch_and_state_survives_bytes() -> None:
    values = seasonal()
    whole = run(values)
    detector, state = Detector(), DetectorState()
    parts, at = [], 0
    for size in [1, 7, 150, 3, 700, 1, 1, 1200, len(values)]:
        part = detector.update(state, values[at : at + size])
        state = DetectorState.from_bytes(state.to_bytes())
        parts.append(part)
        at += size
    for name in ("warming_up", "alarm"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name))
    for name in ("score", "expected", "lower", "upper"):  # equal but for the matrix products' rounding
        np.testing.assert_allclose(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name), rtol=1e-9)


def test_flat_series_is_quiet_until_it_moves() -> None:
    values = np.full(1000, 42.0)
    assert not run(values).alarm.any()
    values[700:] = 43.0
    alarms = np.flatnonzero(run(values).alarm)
    assert alarms.tolist() == [700]


def test_sensitivity_moves_threshold_and_alarm_count() -> None:
    assert alarm_limits(DEFAULT, 0.5) == (DEFAULT.threshold, DEFAULT.spatial_tolerance)
    assert alarm_limits(DEFAULT, 0.75)[0] == DEFAULT.threshold / 2
    assert alarm_limits(DEFAULT, 0.25)[0] == 2 * DEFAULT.threshold
    noisy = seasonal(events=False) + np.random.default_rng(3).standard_t(3, len(seasonal())) * 0.1
    counts = [run(noisy, s).alarm.sum() for s in (0.0, 0.5, 1.0)]
    assert counts[0] <= counts[1] <= counts[2] and counts[2] > counts[0]
    with pytest.raises(ValueError):
        alarm_limits(DEFAULT, 1.5)


def test_a_state_saved_under_other_settings_goes_on_under_the_served_ones() -> None:
    """A stream that started under the earlier settings (models/nearest_context/1) continues after an upgrade."""
    earlier = replace(DEFAULT, embed=32, history=3000, baseline=1000, record=1000, record_halflife=600.0)
    values = seasonal()
    state = DetectorState()
    Detector(earlier).update(state, values[:1500])
    later = Detector().update(DetectorState.from_bytes(state.to_bytes()), values[1500:])
    assert np.isfinite(later.score).all() and later.alarm[EVENTS["dip"] - 1500]
