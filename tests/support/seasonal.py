"""Synthetic seasonal series with known events, at any scale: what a new user tries an anomaly API on."""

from __future__ import annotations

import numpy as np

STEPS_PER_DAY = 96  # 15-minute points
DAYS = 28
EVENTS = {"spike": 12 * STEPS_PER_DAY + 40, "dip": 18 * STEPS_PER_DAY + 10, "flat": 23 * STEPS_PER_DAY + 20}
FLAT_LENGTH = STEPS_PER_DAY // 2


def seasonal(scale: float = 1.0, offset: float = 0.0, events: bool = True, seed: int = 0) -> np.ndarray:
    """A daily cycle with noise; with `events`, a spike, a dip and a half-day flat line at EVENTS."""
    rng = np.random.default_rng(seed)
    n = DAYS * STEPS_PER_DAY
    day = np.arange(n) / STEPS_PER_DAY
    values = np.sin(2 * np.pi * day) + 0.3 * np.sin(4 * np.pi * day + 1) + rng.normal(0, 0.08, n)
    if events:
        values[EVENTS["spike"]] += 2.5
        values[EVENTS["dip"]] -= 2.5
        start = EVENTS["flat"]
        values[start : start + FLAT_LENGTH] = values[start]
    return values * scale + offset
