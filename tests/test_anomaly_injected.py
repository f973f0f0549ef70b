"""bench/anomaly_injected.py: real backgrounds with injected events, seeded, events where the corpus says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.anomaly_injected import KINDS, half, inject, injected_corpus, scales
from bench.nab_scorer import NAB_ROOT

NAB_DATA = NAB_ROOT / "data"


def background(n: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + 10.0 * np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 1.0, n)


def test_injection_is_seeded_by_seed_and_name() -> None:
    real = background()
    a, again = inject("x/a.csv", real, 0), inject("x/a.csv", real, 0)
    assert np.array_equal(a.values, again.values) and a.windows == again.windows and a.kinds == again.kinds
    assert not np.array_equal(a.values, inject("x/a.csv", real, 1).values)
    assert not np.array_equal(a.values, inject("x/b.csv", real, 0).values)
    assert np.array_equal(real, background())  # the real values are not touched


def test_events_are_where_the_corpus_says() -> None:
    kinds, close = set(), 0
    for index in range(40):
        real = background(seed=index)
        item = inject(f"x/{index}.csv", real, 0)
        n = len(real)
        changed = np.flatnonzero(item.values != real)
        assert 2 <= len(item.starts) <= 5 and item.starts == sorted(item.starts)
        stuck = item.kinds[0] == "stuck"  # holds the value at its first row: the change starts one row later
        assert changed[0] == item.starts[0] + stuck  # nothing before the first event
        assert all(0.15 * n < s < 0.98 * n for s in item.starts)
        for at, next_at in zip(item.starts, [*item.starts[1:], n], strict=True):
            assert (item.values[at:next_at] != real[at:next_at]).any()  # every event changes something
        for (left, right), at in zip(item.windows, item.starts, strict=True):
            assert left <= at <= right and right - left + 1 <= int(0.1 * n / len(item.starts))
        assert all(b[0] > a[1] for a, b in zip(item.windows, item.windows[1:], strict=False))  # no overlap
        kinds |= set(item.kinds)
        close += int((np.diff(item.starts) < 100).sum())
    assert kinds == set(KINDS) and close > 10


def test_sizes_follow_the_series_own_scale() -> None:
    real = background()
    level, step = scales(real)
    assert level == pytest.approx(1.4826 * np.median(np.abs(real - np.median(real))))
    for scale in (1e-3, 1e6):
        item, scaled = inject("x/a.csv", real, 0), inject("x/a.csv", real * scale, 0)
        np.testing.assert_allclose(scaled.values, item.values * scale, rtol=1e-9)


def test_the_halves_split_by_name_and_read_no_label(tmp_path: Path) -> None:
    names = [f"k/{i}.csv" for i in range(40)]
    assert {half(n) for n in names} == {"search", "check"} and [half(n) for n in names] == [half(n) for n in names]
    for name in names[:6]:
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            "timestamp,value\n"
            + "".join(f"2024-01-01 00:{i // 60:02d}:{i % 60:02d},{v}\n" for i, v in enumerate(background(600)))
        )
    search, check = injected_corpus(tmp_path, 0, "search"), injected_corpus(tmp_path, 0, "check")
    assert sorted(s.name for s in search + check) == sorted(names[:6])
    assert all(half(s.name) == "search" for s in search) and all(half(s.name) == "check" for s in check)


@pytest.mark.real_data
@pytest.mark.skipif(not NAB_DATA.is_dir(), reason="NAB's data is not in ../shared/data")
def test_real_corpus_has_both_halves_of_nab() -> None:
    search, check = injected_corpus(NAB_DATA, 0, "search"), injected_corpus(NAB_DATA, 0, "check")
    assert len(search) + len(check) == 58 and len(search) >= 20 and len(check) >= 20
