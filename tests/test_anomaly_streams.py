"""app/families/anomaly/streams.py: one lock per stream, so streams progress side by side and each stays in order;
across processes (two stores on one file) a compare-and-swap keeps the same order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app.errors import TooManyStreams
from app.families.anomaly.detector import DEFAULT, Detector, DetectorState
from app.families.anomaly.streams import StreamStore
from tests.support.seasonal import seasonal


def append_in_thread(store: StreamStore, series_id: str, values: np.ndarray) -> threading.Thread:
    thread = threading.Thread(target=store.append, args=(series_id, values, None, None, DEFAULT), daemon=True)
    thread.start()
    return thread


def test_a_busy_stream_does_not_hold_up_another(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "streams.sqlite3", max_streams=10)
    values = seasonal()[:400]
    with store.locks.hold("a"):  # stream "a" is mid-append (its lock held)
        other = append_in_thread(store, "b", values)
        other.join(timeout=30)
        assert not other.is_alive()  # "b" was scored and stored meanwhile
        same = append_in_thread(store, "a", values)
        same.join(timeout=0.5)
        assert same.is_alive()  # "a" waits for its own earlier append
    same.join(timeout=30)
    assert not same.is_alive()
    assert store.get("a").points == store.get("b").points == 400
    store.close()


def assert_scored_in_order_with_none_lost(stores: list[StreamStore]) -> None:
    """24 appends to one stream from 6 threads, spread over `stores` (one file): every point stored once, in order."""
    store = stores[0]
    values = seasonal()[:1200]
    parts = np.array_split(values, 24)
    with ThreadPoolExecutor(max_workers=6) as pool:
        calls = [(stores[i % len(stores)], part) for i, part in enumerate(parts)]
        answers = list(pool.map(lambda call: call[0].append("s", call[1], None, None, DEFAULT), calls))
    assert store.get("s").points == len(values)
    # Each request got a contiguous run of stream indices; laid end to end by first index, they cover the stream.
    ordered = sorted(zip(answers, parts, strict=True), key=lambda a: a[0][2])
    firsts = [first for (_, _, first), _ in ordered]
    assert firsts == np.cumsum([0] + [len(p) for _, p in ordered[:-1]]).tolist()
    # Scored in that order, the answers are the detector's on the series in that order.
    series = np.concatenate([p for _, p in ordered])
    whole = Detector().update(DetectorState(), series)
    np.testing.assert_array_equal(np.concatenate([scored.alarm for (_, scored, _), _ in ordered]), whole.alarm)
    np.testing.assert_allclose(np.concatenate([scored.score for (_, scored, _), _ in ordered]), whole.score, rtol=1e-9)
    for each in stores:
        assert each.locks._locks == {}  # no lock left behind
        each.close()


def test_concurrent_appends_to_one_stream_are_scored_in_order_with_none_lost(tmp_path: Path) -> None:
    assert_scored_in_order_with_none_lost([StreamStore(tmp_path / "streams.sqlite3", max_streams=10)])


def test_appends_from_two_processes_to_one_stream_are_scored_in_order_with_none_lost(tmp_path: Path) -> None:
    # Two stores on one file share nothing but the file, as two worker processes do.
    assert_scored_in_order_with_none_lost([StreamStore(tmp_path / "streams.sqlite3", max_streams=10) for _ in range(2)])


def test_two_processes_cannot_create_more_streams_than_the_limit(tmp_path: Path) -> None:
    stores = [StreamStore(tmp_path / "streams.sqlite3", max_streams=3) for _ in range(2)]
    values = seasonal()[:50]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: created(stores[i % 2], f"s{i}", values), range(8)))
    assert results.count(True) == 3 and len(stores[1].list()) == 3
    for store in stores:
        store.close()


def created(store: StreamStore, series_id: str, values: np.ndarray) -> bool:
    try:
        store.append(series_id, values, None, None, DEFAULT)
    except TooManyStreams:
        return False
    return True
