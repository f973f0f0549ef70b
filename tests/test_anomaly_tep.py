"""The served multivariate rule on the Tennessee Eastman Process as bench/anomaly_tep.py simulates it (tep-studio,
the optional [tep] extra; skips without it): a textbook fault is found within minutes, on the loop it hits, and
the same hours without the fault raise nothing."""

from __future__ import annotations

import json

import pytest

from app.families.anomaly import multivariate
from app.families.anomaly.detector import DetectorConfig
from bench.anomaly_tep import GROUPS, ONSET, column, simulate
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow  # two 10-hour simulations, about 4 s

SERVED = DetectorConfig(**json.loads((ROOT / "models" / "nearest_context" / "2" / "detector.json").read_text()))
REACTOR = GROUPS["reactor"]  # XMEAS 1-9 and 21, XMV 1-4 and 10


def reactor_alarms(fault: int, seed: int) -> list[multivariate.Alarm]:
    """10 simulated hours (200 rows, the fault on from row 160), the reactor's channels at sensitivity 0. Skips
    without tep-studio (inside the test, not at import: the test is counted the same with or without it)."""
    pytest.importorskip("tep_studio", reason="optional: pip install -e '.[tep]'")
    run = simulate(fault, seed, hours=10.0)
    assert run.values.shape == (200, 53) and run.shutdown_hours is None
    values = run.values[:, [column(n) for n in REACTOR]]
    return multivariate.score(values, REACTOR, sensitivity=0.0, config=SERVED).alarms


def test_reactor_cooling_valve_stiction_is_found_in_minutes_on_the_reactor_cooling_loop() -> None:
    """IDV(14): the reactor temperature XMEAS(9), its cooling water outlet XMEAS(21) and the cooling water valve
    XMV(10) move together (Chiang, Russell & Braatz's textbook case); fault-free, the same seed's plant is quiet."""
    assert reactor_alarms(0, 114) == []
    alarms = reactor_alarms(14, 114)
    assert alarms and ONSET <= alarms[0].index <= ONSET + 2
    assert alarms[0].scores and set(alarms[0].scores) <= {"m9", "m21", "v10"}
