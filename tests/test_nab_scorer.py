"""bench/nab_scorer.py: NAB's scoring rules, on hand-made cases and against NAB's published scoreboard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.nab_scorer import (
    MAX_TP,
    corpus_scores,
    perfect_detections,
    probation_length,
    published_score,
    scaled_sigmoid,
    score_series,
)
from tests.support.paths import SHARED_DATA

NAB = SHARED_DATA / "nab"
STANDARD = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}
N = 2000  # probation: 300 rows
WINDOW = (1000, 1099)


def detect(*rows: int) -> np.ndarray:
    d = np.zeros(N, dtype=bool)
    d[list(rows)] = True
    return d


def test_scaled_sigmoid_landmarks() -> None:
    np.testing.assert_allclose(
        scaled_sigmoid(np.array([-1.0, 0.0, 1.0, 3.0, 10.0])), [0.98661, 0, -0.98661, -1, -1], atol=1e-5
    )
    assert probation_length(2000) == 300 and probation_length(20000) == 750


def test_first_detection_in_window_counts_once_and_earlier_is_better() -> None:
    early = score_series(detect(1000), [WINDOW], STANDARD)
    assert early.raw == pytest.approx(1.0) and (early.tp, early.fn, early.fp) == (1, 0, 0)
    late = score_series(detect(1090), [WINDOW], STANDARD)
    assert 0 < late.raw < 0.5
    assert score_series(detect(1000, 1050, 1090), [WINDOW], STANDARD).raw == pytest.approx(1.0)


def test_missed_window_costs_fn_weight_and_probation_is_ignored() -> None:
    assert score_series(detect(10, 200), [WINDOW], STANDARD).raw == pytest.approx(-1.0)
    low_fn = dict(STANDARD, fnWeight=2.0)
    assert score_series(detect(), [WINDOW], low_fn).raw == pytest.approx(-2.0)
    assert score_series(detect(), [(100, 200)], STANDARD).windows == 0  # wholly inside probation: not scored


def test_false_positives_cost_less_just_after_a_window() -> None:
    far = score_series(detect(1000, 1900), [WINDOW], STANDARD)
    near = score_series(detect(1000, 1110), [WINDOW], STANDARD)
    before = score_series(detect(1000, 500), [WINDOW], STANDARD)
    assert far.raw == pytest.approx(1.0 - 0.11) and before.raw == pytest.approx(1.0 - 0.11)
    assert 1.0 - 0.11 < near.raw < 1.0 and near.fp == 1


def test_normalisation_null_zero_perfect_hundred() -> None:
    windows = {"realX/a.csv": [WINDOW], "realY/b.csv": [(500, 540), (1500, 1540)]}
    perfect = {name: perfect_detections(N, w) for name, w in windows.items()}
    null = {name: np.zeros(N, dtype=bool) for name in windows}
    assert corpus_scores(perfect, windows, {"standard": STANDARD})["standard"]["all"] == pytest.approx(100.0)
    assert corpus_scores(null, windows, {"standard": STANDARD})["standard"]["all"] == pytest.approx(0.0)
    half = {"realX/a.csv": perfect["realX/a.csv"], "realY/b.csv": null["realY/b.csv"]}
    scores = corpus_scores(half, windows, {"standard": STANDARD})["standard"]
    assert scores["realX"] == pytest.approx(100.0) and scores["realY"] == pytest.approx(0.0)
    assert MAX_TP == pytest.approx(0.98661, abs=1e-5)


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.skipif(not (NAB / "published" / "results").exists(), reason="../shared/data/nab/published is absent")
@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian", "null"])
def test_reproduces_published_scoreboard(detector: str) -> None:
    published = json.loads((NAB / "published" / "final_results.json").read_text())[detector]
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert published_score(detector, profile, NAB) == pytest.approx(published[profile], abs=0.5)
