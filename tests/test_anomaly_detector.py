"""app/families/anomaly/detector.py: any scale, causal, one state for a whole series or a stream fed in parts."""

from __future__ import annotations

import io
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


def test_a_stream_warming_up_under_a_longer_warm_up_settles_at_its_first_point_under_the_shorter_one() -> None:
    """A stream saved by v1-v4 (warm-up 150) after 120 points and continued by v5 (warm-up 100) fixes its scale from
    its 120 points when next scored: what a detector with a 120-point warm-up gives (unsettled, it scored in raw
    units with no distance baseline)."""
    values = seasonal() * 1e4 + 5e6  # the scale matters: unsettled, offset 0 and unit 1
    old, state = replace(DEFAULT, warmup=150, young=0, youth=0.0), DetectorState()
    Detector(old).update(state, values[:120])
    state = DetectorState.from_bytes(state.to_bytes())
    later = Detector(DEFAULT).update(state, values[120:])
    expected = Detector(replace(DEFAULT, warmup=120)).update(DetectorState(), values)
    assert DEFAULT.warmup < 120 and not later.warming_up.any()
    np.testing.assert_array_equal(later.alarm, expected.alarm[120:])
    for name in ("score", "expected"):
        np.testing.assert_allclose(getattr(later, name), getattr(expected, name)[120:], rtol=1e-9)


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


def noisy_level(n: int, seed: int = 0) -> np.ndarray:
    return 10.0 + np.random.default_rng(seed).normal(0, 0.1, n)


def test_a_second_event_closer_than_the_refractory_period_is_found_once_the_first_is_over() -> None:
    """quiet: an event is over after that many undisturbed points; a smaller event 40 points after a spike (inside
    the 100-point refractory period and under the spike's record score) is then a new alarm."""
    values = seasonal()
    second = EVENTS["spike"] + 40
    values[second] += 2.0
    alarms = run(values).alarm
    assert alarms[EVENTS["spike"]] and not alarms[second - 5 : second + 5].any()  # hidden without `quiet`
    events = Detector(replace(DEFAULT, quiet=10)).update(DetectorState(), values).alarm
    assert np.flatnonzero(events).tolist() == sorted([*np.flatnonzero(alarms), second])
    alone = Detector(replace(DEFAULT, quiet=10)).update(DetectorState(), seasonal()).alarm
    assert np.array_equal(alone, run(seasonal()).alarm)  # no alarm of its own


def test_a_long_disturbed_stretch_needs_a_longer_calm_before_it_is_over() -> None:
    """quiet_growth: the calm that ends an event grows with the event's length. Three bursts of noise 35 points
    apart (short calm runs between them) are one event, where a fixed `quiet` re-alarms at each; a spike's event is
    short, so a second event 40 points after it is still found separately."""
    values = noisy_level(1200)
    rng = np.random.default_rng(1)
    for k, at in enumerate((500, 535, 570)):
        values[at : at + 10] += rng.normal(0, 2.0**k, 10)
    fixed = Detector(replace(DEFAULT, quiet=10)).update(DetectorState(), values).alarm
    growing = Detector(replace(DEFAULT, quiet=10, quiet_growth=0.5)).update(DetectorState(), values).alarm
    assert np.flatnonzero(fixed[450:]).tolist() == [50, 87, 122]  # 500, 537, 572: one alarm per burst
    assert np.flatnonzero(growing[450:]).tolist() == [50]
    spiked = seasonal()
    second = EVENTS["spike"] + 40
    spiked[second] += 2.0
    alarms = Detector(replace(DEFAULT, quiet=10, quiet_growth=0.5)).update(DetectorState(), spiked).alarm
    assert alarms[EVENTS["spike"]] and alarms[second]


def test_a_young_detector_alarms_with_wider_limits() -> None:
    """A short warm-up (50) with limits x(1 + youth) at its end, falling to x1 at `young`: an event at point 70,
    inside the 150-point warm-up of the defaults, is found, with the band wider while the detector is young."""
    values = noisy_level(800)
    values[70] += 3.0
    young = replace(DEFAULT, warmup=50, young=300, youth=2.0)
    assert not run(values).alarm.any()
    out = Detector(young).update(DetectorState(), values)
    assert np.flatnonzero(out.alarm).tolist() == [70]
    width = out.upper - out.lower
    assert width[60] > 2 * width[400] and not out.warming_up[50:].any()


def test_onset_alarms_at_the_first_point_of_a_jump() -> None:
    """onset: a value further from its forecast than that many robust scales of recent forecast errors alarms at
    once; the context comparison alone needs a second point of the new level."""
    values = noisy_level(1500)
    values[200] += 5.0  # widens the seen range: the jump below stays inside it
    values[900:] += 1.0
    assert np.flatnonzero(run(values).alarm).tolist() == [200, 901]
    onset = Detector(replace(DEFAULT, onset=6.0)).update(DetectorState(), values).alarm
    assert np.flatnonzero(onset).tolist() == [200, 900]
    for seed in range(4):  # and no alarm of its own on noise (the spatial rule's, as without it)
        noise = noisy_level(1500, seed)
        alone = Detector(replace(DEFAULT, onset=6.0)).update(DetectorState(), noise).alarm
        assert np.array_equal(alone, run(noise).alarm)


def test_event_rules_give_a_stream_in_parts_what_one_batch_gives() -> None:
    config = replace(DEFAULT, warmup=50, young=300, youth=1.0, quiet=10, onset=6.0, quiet_growth=0.5)
    values = seasonal()
    values[EVENTS["spike"] + 40] += 2.0
    whole = Detector(config).update(DetectorState(), values)
    state, parts, at = DetectorState(), [], 0
    for size in [30, 25, 1, 300, EVENTS["spike"] - 356 + 20, 7, 1000, len(values)]:
        parts.append(Detector(config).update(state, values[at : at + size]))
        state = DetectorState.from_bytes(state.to_bytes())
        at += size
    np.testing.assert_array_equal(np.concatenate([p.alarm for p in parts]), whole.alarm)
    np.testing.assert_allclose(np.concatenate([p.score for p in parts]), whole.score, rtol=1e-9)


def test_a_state_saved_before_the_event_rules_loads() -> None:
    """A stream's state from before `calm` was kept (six scalars) goes on, calm 0."""
    state = DetectorState()
    Detector().update(state, seasonal()[:400])
    saved = np.load(io.BytesIO(state.to_bytes()))
    old = io.BytesIO()
    np.savez(old, scalars=saved["scalars"][:6], **{k: saved[k] for k in DetectorState.ARRAYS})
    loaded = DetectorState.from_bytes(old.getvalue())
    assert loaded.seen == 400 and loaded.calm == 0 and loaded.last_alarm == state.last_alarm
