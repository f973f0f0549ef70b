"""The NAB loader (training/common/nab_data.py): a NAB root or a single CSV, label windows, the download cache."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.support.nab_like import ANOMALIES, DAYS, SERIES, STEPS_PER_DAY, synthetic_series, write_csv, write_nab_root
from training.common import nab_data
from training.common.nab_data import load_nab_series, load_nab_windows, window_mask


def test_loads_nab_root_folder_and_windows(tmp_path: Path) -> None:
    timestamps, values = write_nab_root(tmp_path)
    t, v = load_nab_series(tmp_path)
    assert t.dtype == np.dtype("datetime64[s]") and v.dtype == np.float64
    np.testing.assert_array_equal(t, timestamps.astype("datetime64[s]"))
    np.testing.assert_allclose(v, np.round(values))
    windows = load_nab_windows(tmp_path)
    assert len(windows) == 2
    mask = window_mask(t, windows)
    assert mask.sum() == sum(b - a + 1 for a, b in ANOMALIES)
    assert mask[ANOMALIES[0][0]] and not mask[ANOMALIES[0][0] - 1]


def test_single_csv_sorted_and_labels_optional(tmp_path: Path) -> None:
    timestamps, values = synthetic_series()
    shuffled = np.random.default_rng(1).permutation(len(values))
    csv = write_csv(tmp_path / "series.csv", timestamps, values, order=shuffled)
    t, v = load_nab_series(csv)
    assert (np.diff(t) > np.timedelta64(0, "s")).all()
    np.testing.assert_allclose(v, np.round(values))
    assert load_nab_windows(csv) is None
    with pytest.raises(FileNotFoundError):
        load_nab_windows(csv, required=True)


def test_csv_inside_nab_tree_finds_root_labels(tmp_path: Path) -> None:
    write_nab_root(tmp_path)
    assert len(load_nab_windows(tmp_path / "data" / SERIES)) == 2


def test_missing_series_and_bad_csv_raise(tmp_path: Path) -> None:
    write_nab_root(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_nab_series(tmp_path, series="realKnownCause/missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,val\n2014-07-01 00:00:00,1\n")
    with pytest.raises(ValueError):
        load_nab_series(bad)


def test_download_path_fills_the_cache_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download code runs against a fake urlopen: no network in tests, but the real caching logic."""
    source = tmp_path / "source"
    write_nab_root(source)
    requested: list[str] = []

    def fake_urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        requested.append(url)
        relative = url.removeprefix(nab_data.NAB_RAW_URL + "/")
        return io.BytesIO((source / relative).read_bytes())

    monkeypatch.setattr(nab_data.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(nab_data, "CACHE_DIR", tmp_path / "cache")
    t, _ = load_nab_series(None)
    assert len(t) == DAYS * STEPS_PER_DAY
    assert len(load_nab_windows(None)) == 2
    load_nab_series(None)
    assert requested == [
        "https://raw.githubusercontent.com/numenta/NAB/master/data/realKnownCause/nyc_taxi.csv",
        "https://raw.githubusercontent.com/numenta/NAB/master/labels/combined_windows.json",
    ]
    assert (tmp_path / "cache" / "data" / SERIES).is_file()
