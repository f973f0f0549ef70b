"""The anomaly scoring shared by training and serving (app/families/anomaly/scoring.py): windows, point scores,
smoothing, alarm regions, and that it runs without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from app.families.anomaly.scoring import (
    alarm_regions,
    normalise,
    point_scores,
    score_series,
    sliding_windows,
    smooth,
    window_starts,
)
from tests.support.nab_like import ANOMALIES, STEPS_PER_DAY, synthetic_series
from tests.support.paths import ROOT


@pytest.mark.parametrize(("length", "window", "stride"), [(100, 10, 1), (100, 10, 7), (101, 10, 10), (10, 10, 3)])
def test_windows_cover_every_point(length: int, window: int, stride: int) -> None:
    x = np.arange(length, dtype=np.float32)
    windows, starts = sliding_windows(x, window, stride)
    assert windows.shape == (len(starts), window)
    assert starts[0] == 0 and starts[-1] == length - window
    np.testing.assert_array_equal(windows[:, 0], starts)
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()


def test_windows_reject_short_series_and_bad_arguments() -> None:
    with pytest.raises(ValueError):
        window_starts(9, 10, 1)
    with pytest.raises(ValueError):
        window_starts(100, 10, 0)
    with pytest.raises(ValueError):
        normalise(np.ones(5), 0.0, 0.0)


def test_point_scores_average_over_covering_windows() -> None:
    x = np.zeros(7)
    windows, starts = sliding_windows(x, 3, 2)  # starts 0, 2, 4
    recon = np.zeros((len(starts), 3, 1))
    recon[1, :, 0] = 2.0  # the window covering points 2..4 is off by 2 everywhere
    scores = point_scores(x, recon, starts)
    # Point 2 is covered by windows 0 and 1: (0 + 4) / 2; point 3 only by window 1; point 4 by windows 1 and 2.
    np.testing.assert_allclose(scores, [0, 0, 2, 4, 2, 0, 0])
    assert point_scores(x, recon, starts, smoothing=3).shape == (7,)


def test_smooth_keeps_constants_and_spreads_spikes() -> None:
    np.testing.assert_allclose(smooth(np.full(10, 3.0), 4), 3.0)
    spike = np.zeros(11)
    spike[5] = 5.0
    smoothed = smooth(spike, 5)
    np.testing.assert_allclose(smoothed.sum(), 5.0)
    assert smoothed.max() == pytest.approx(1.0) and (smoothed[3:8] > 0).all()


def test_alarm_regions_are_maximal_runs() -> None:
    flags = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert alarm_regions(flags) == [(0, 1), (4, 4), (6, 8)]
    assert alarm_regions(np.zeros(5, dtype=bool)) == []


def test_score_series_flags_what_the_model_cannot_reconstruct() -> None:
    """With a 'model' that returns the typical (anomaly-free) cycle, only the injected anomalies are flagged."""
    _, values = synthetic_series()
    mean, std = values.mean(), values.std()
    config = {"window": 48, "stride": 5, "mean": mean, "std": std, "smoothing": 6, "threshold": 0.5}
    day = np.arange(len(values)) / STEPS_PER_DAY
    weekend = ((day // 1) % 7 >= 5).astype(float)
    typical = normalise(15000 + 7000 * np.sin(2 * np.pi * (day - 0.3)) * (1 - 0.4 * weekend), mean, std)
    typical_windows, _ = sliding_windows(typical, 48, 5)
    served = 0

    def reconstruct(batch: np.ndarray) -> np.ndarray:
        # Batches arrive in window order, so a counter tells which typical windows they stand for.
        nonlocal served
        out = typical_windows[served : served + len(batch)]
        served += len(batch)
        assert batch.dtype == np.float32 and batch.shape[1:] == (48, 1)
        return out[..., None]

    result = score_series(values, reconstruct, config)
    assert served == len(typical_windows)
    assert result["scores"].shape == values.shape
    assert result["flags"].dtype == bool
    regions = result["regions"]
    assert len(regions) == 2
    for (a, b), (ta, tb) in zip(regions, ANOMALIES, strict=True):
        assert a <= tb and b >= ta  # each region overlaps its anomaly


def test_scoring_module_does_not_import_tensorflow() -> None:
    code = "import sys, app.families.anomaly.scoring; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
