"""NAB (Numenta Anomaly Benchmark) loading: a download of the canonical files, or a local NAB folder or CSV file.

A NAB root folder holds `data/<category>/<series>.csv` (columns `timestamp,value`) and
`labels/combined_windows.json`, which maps "<category>/<series>.csv" to a list of [start, end] anomaly windows.
"""

from __future__ import annotations

import csv
import json
import os
import urllib.request
from pathlib import Path

import numpy as np

from training.common.downloads import downloading

NAB_RAW_URL = "https://raw.githubusercontent.com/numenta/NAB/master"
WINDOWS_FILE = "labels/combined_windows.json"
DEFAULT_SERIES = "realKnownCause/nyc_taxi.csv"
CACHE_DIR = Path.home() / ".cache" / "deepserve" / "nab"


def _download(relative: str, cache_dir: Path | None = None) -> Path:
    """Fetch one file of the NAB repository into the cache (once) and return its local path."""
    target = Path(cache_dir or CACHE_DIR) / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary name first so an interrupted download never leaves a truncated file in the cache.
        partial = target.with_name(target.name + ".part")
        with (
            downloading(f"NAB's {relative}", "--data path/to/NAB (its data/ and labels/) or one CSV"),
            urllib.request.urlopen(f"{NAB_RAW_URL}/{relative}", timeout=60) as response,
            open(partial, "wb") as f,
        ):
            f.write(response.read())
        os.replace(partial, target)
    return target


def _series_csv(data: str | Path | None, series: str) -> Path:
    if data is None:
        return _download(f"data/{series}")
    path = Path(data)
    if path.is_file():
        return path
    if path.is_dir() and (path / "data" / series).is_file():
        return path / "data" / series
    if path.is_dir() and (path / series).is_file():
        # A folder that is NAB's data/ itself.
        return path / series
    raise FileNotFoundError(f"NAB series {series} not found at {path} (expected a CSV file or a NAB root folder)")


def read_series_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps as datetime64[s], values as float64) from a `timestamp,value` CSV, sorted by time."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"timestamp", "value"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV with a header 'timestamp,value' and at least one row")
    timestamps = np.array([r["timestamp"].replace(" ", "T") for r in rows], dtype="datetime64[s]")
    values = np.array([float(r["value"]) for r in rows], dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: the value column has missing or non-finite entries")
    order = np.argsort(timestamps, kind="stable")
    return timestamps[order], values[order]


def load_nab_series(data: str | Path | None = None, series: str = DEFAULT_SERIES) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, values) of one NAB series.

    `data` is None (download from NAB's GitHub into ~/.cache/deepserve/nab), a NAB root folder holding
    data/ and labels/, or a single `timestamp,value` CSV file.
    """
    return read_series_csv(_series_csv(data, series))


def load_nab_windows(
    data: str | Path | None = None, series: str = DEFAULT_SERIES, required: bool | None = None
) -> list[tuple[np.datetime64, np.datetime64]] | None:
    """The labelled anomaly windows of one series as (start, end) datetime64[s] pairs, both ends inclusive.

    Labels are looked up in labels/combined_windows.json of the NAB root (downloaded when `data` is None).
    For a single CSV file they are optional: a `combined_windows.json` next to it or in ../labels/ is used when
    present, otherwise the result is None. `required=True` turns a missing labels file into an error
    (the default: required for a download or a NAB root folder, optional for a single CSV).
    """
    if data is None:
        candidates = [_download(WINDOWS_FILE)]
    else:
        path = Path(data)
        if path.is_file():
            # Next to the CSV, or in the labels/ of a NAB tree the CSV sits in (root/data/<category>/<file>).
            candidates = [path.parent / "combined_windows.json", *(p / WINDOWS_FILE for p in path.parents[1:4])]
            required = False if required is None else required
        else:
            candidates = [path / WINDOWS_FILE, path.parent / WINDOWS_FILE]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        if required is False:
            return None
        raise FileNotFoundError(f"no NAB labels file among {[str(c) for c in candidates]}")
    windows = json.loads(found.read_text())
    if series not in windows:
        raise KeyError(f"{found} has no windows for {series}")
    return [(_to_datetime(start), _to_datetime(end)) for start, end in windows[series]]


def _to_datetime(text: str) -> np.datetime64:
    # NAB writes "2014-10-30 15:30:00.000000": keep seconds resolution, which is what the series use.
    return np.datetime64(text.strip().replace(" ", "T"), "s")


def window_mask(timestamps: np.ndarray, windows: list[tuple[np.datetime64, np.datetime64]]) -> np.ndarray:
    """Boolean per point: True inside any labelled window (ends inclusive)."""
    mask = np.zeros(len(timestamps), dtype=bool)
    for start, end in windows:
        mask |= (timestamps >= start) & (timestamps <= end)
    return mask
