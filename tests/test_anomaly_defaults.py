"""bench/anomaly_synthetic.py and bench/anomaly_defaults.py: the labelled corpus the detector's defaults are chosen
on, and the alarm replay the choice relies on (it must give exactly the detector's alarms)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.families.anomaly.detector import DEFAULT, Detector, DetectorState
from bench.anomaly_defaults import STANDARD, Labelled, Scorer, Trace, calibrate, replay_alarms
from bench.anomaly_synthetic import ANOMALIES, KINDS, corpus


def test_corpus_is_seeded_and_labelled_as_nab_labels() -> None:
    items = corpus(seed=3, series=40)
    again = corpus(seed=3, series=40)
    assert all(np.array_equal(a.values, b.values) and a.windows == b.windows for a, b in zip(items, again, strict=True))
    assert not np.array_equal(items[0].values, corpus(seed=4, series=1)[0].values)
    assert {s.kind for s in items} == set(KINDS) and {a for s in items for a in s.anomalies} <= set(ANOMALIES)
    assert any(not s.windows for s in items) and any(len(s.windows) > 1 for s in items)
    for s in items:
        n = len(s.values)
        assert np.isfinite(s.values).all() and (np.diff(s.timestamps) > np.timedelta64(0, "s")).all()
        for left, right in s.windows:  # NAB: 10% of the series over its anomalies, none in the probation
            assert 0.15 * n <= left <= right < n and right - left + 1 <= int(0.1 * n / len(s.windows))
        assert [a for a, _ in s.windows] == sorted(a for a, _ in s.windows)


@pytest.mark.parametrize(
    "config",
    [DEFAULT, replace(DEFAULT, threshold=1.5, record=100, record_halflife=0.0, refractory=10, spatial_tolerance=0.01)],
)
def test_replayed_alarms_are_the_detectors(config) -> None:
    for s in corpus(seed=0, series=7)[:7:2]:
        trace = Trace.run(replace(config, threshold=DEFAULT.threshold), s.values)  # scores do not depend on alarms
        for sensitivity in (0.25, 0.5, 0.875):
            expected = Detector(config, sensitivity).update(DetectorState(), s.values).alarm
            factor = 4.0 ** (1 - 2 * sensitivity)
            np.testing.assert_array_equal(replay_alarms(trace, config, factor), expected)


def test_scorer_gives_the_null_detector_0_and_the_perfect_one_100() -> None:
    items = [Labelled(s.name, s.values, s.windows) for s in corpus(seed=1, series=10)]
    scorer = Scorer(items, STANDARD)
    assert scorer([np.zeros(len(s.values), bool) for s in items]) == 0.0
    perfect = []
    for s in items:
        detections = np.zeros(len(s.values), bool)
        detections[[left for left, _ in s.windows]] = True
        perfect.append(detections)
    assert scorer(perfect) == pytest.approx(100.0)


def test_calibration_raises_the_threshold_only_where_real_series_alarm_more() -> None:
    items = [Labelled(s.name, s.values, s.windows) for s in corpus(seed=2, series=4)]
    assert calibrate(DEFAULT, items, items) == DEFAULT  # the same rate: nothing to raise
    rng = np.random.default_rng(0)
    jumpy = [Labelled(s.name, s.values + np.std(s.values) * rng.standard_t(1, len(s.values)), []) for s in items]
    raised = calibrate(DEFAULT, items, jumpy)
    assert raised.threshold > DEFAULT.threshold and raised.spatial_tolerance > DEFAULT.spatial_tolerance
    factor = raised.threshold / DEFAULT.threshold
    assert raised.spatial_tolerance / DEFAULT.spatial_tolerance == pytest.approx(factor, rel=1e-3)
