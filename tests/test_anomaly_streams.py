"""app/families/anomaly/streams.py: one lock per stream, so streams progress side by side and each stays in order;
across processes (two stores on one file) a compare-and-swap keeps the same order."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from app.errors import Overloaded, StreamNotFound, TooManyStreams
from app.families.anomaly.detector import DEFAULT, Detector, DetectorState
from app.families.anomaly.streams import NO_OWNER, SWEEP_BATCH, StreamStore
from tests.support.seasonal import seasonal


def append_in_thread(store: StreamStore, series_id: str, values: np.ndarray) -> threading.Thread:
    thread = threading.Thread(target=store.append, args=("", series_id, values, None, None, DEFAULT), daemon=True)
    thread.start()
    return thread


def test_a_busy_stream_does_not_hold_up_another(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "streams.sqlite3", max_streams=10)
    values = seasonal()[:400]
    with store.locks.hold(("", "a")):  # stream "a" is mid-append (its lock held)
        other = append_in_thread(store, "b", values)
        other.join(timeout=30)
        assert not other.is_alive()  # "b" was scored and stored meanwhile
        same = append_in_thread(store, "a", values)
        same.join(timeout=0.5)
        assert same.is_alive()  # "a" waits for its own earlier append
    same.join(timeout=30)
    assert not same.is_alive()
    assert store.get("", "a").points == store.get("", "b").points == 400
    store.close()


def assert_scored_in_order_with_none_lost(stores: list[StreamStore]) -> None:
    """24 appends to one stream from 6 threads, spread over `stores` (one file): every point stored once, in order."""
    store = stores[0]
    values = seasonal()[:1200]
    parts = np.array_split(values, 24)
    with ThreadPoolExecutor(max_workers=6) as pool:
        calls = [(stores[i % len(stores)], part) for i, part in enumerate(parts)]
        answers = list(pool.map(lambda call: call[0].append("", "s", call[1], None, None, DEFAULT), calls))
    assert store.get("", "s").points == len(values)
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
    assert results.count(True) == 3 and len(stores[1].list("", 10)[0]) == 3
    for store in stores:
        store.close()


def created(store: StreamStore, series_id: str, values: np.ndarray) -> bool:
    try:
        store.append("", series_id, values, None, None, DEFAULT)
    except TooManyStreams:
        return False
    return True


# --- owners, quotas, expiry, pages, old files -------------------------------------------------------------------


class Clock:
    """Unix seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_each_owner_has_its_own_streams_under_the_same_ids(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "streams.sqlite3", max_streams=10)
    values = seasonal()[:300]
    store.append("alice", "checkout", values, None, 0.7, DEFAULT)
    store.append("bob", "checkout", values[:50], None, None, DEFAULT)
    assert store.get("alice", "checkout").points == 300 and store.get("alice", "checkout").sensitivity == 0.7
    assert store.get("bob", "checkout").points == 50 and store.get("bob", "checkout").sensitivity == 0.5
    for missing in (lambda: store.get("carol", "checkout"), lambda: store.delete("carol", "checkout")):
        with pytest.raises(StreamNotFound):
            missing()
    store.delete("bob", "checkout")
    assert store.get("alice", "checkout").points == 300
    assert [s.series_id for s in store.list("alice", 10)[0]] == ["checkout"] and store.list("bob", 10) == ([], None)
    store.close()


def test_each_owner_has_a_quota_besides_the_global_limit(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "streams.sqlite3", max_streams=5, max_per_owner=2)
    one = np.array([1.0])
    for name in ("a", "b"):
        store.append("alice", name, one, None, None, DEFAULT)
    with pytest.raises(TooManyStreams) as refused:
        store.append("alice", "c", one, None, None, DEFAULT)
    assert refused.value.detail == {"limit": "max_streams_per_client", "max_streams_per_client": 2}
    store.append("alice", "a", one, None, None, DEFAULT)  # an existing stream takes points at the quota
    for owner, name in (("bob", "a"), ("bob", "b"), ("carol", "a")):
        store.append(owner, name, one, None, None, DEFAULT)
    with pytest.raises(TooManyStreams) as refused:
        store.append("dave", "a", one, None, None, DEFAULT)
    assert refused.value.detail == {"limit": "max_streams", "max_streams": 5}
    store.close()
    # Without keys there is one owner: only the global limit applies to it.
    alone = StreamStore(tmp_path / "alone.sqlite3", max_streams=5, max_per_owner=2)
    for name in "abcde":
        alone.append(NO_OWNER, name, one, None, None, DEFAULT)
    alone.close()


def test_an_idle_stream_expires_and_is_deleted_in_bounded_sweeps(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "streams.sqlite3"
    store = StreamStore(path, max_streams=300, idle_seconds=3600, clock=clock)
    one = np.array([1.0])
    store.append("a", "old", seasonal()[:200], None, None, DEFAULT)
    for i in range(250):
        store.append("b", f"s{i:03d}", one, None, None, DEFAULT)
    clock.now += 3000
    store.append("a", "fresh", one, None, None, DEFAULT)
    clock.now += 601  # all but "fresh" idle for over an hour
    assert rows(path) == 252  # nothing deleted yet, but already gone for every caller:
    with pytest.raises(StreamNotFound):
        store.get("a", "old")
    assert rows(path) == 251  # touched: deleted
    assert store.list("b", 1000) == ([], None)
    assert rows(path) == 251 - SWEEP_BATCH  # a list sweeps one batch, oldest first
    info, _, first = store.append("a", "old", one, None, None, DEFAULT)  # the same id starts anew
    assert first == 0 and info.points == 1
    assert rows(path) == 251 - 2 * SWEEP_BATCH + 1  # and a new stream sweeps one batch
    with pytest.raises(StreamNotFound):
        store.delete("b", "s249")
    assert [s.series_id for s in store.list("a", 10)[0]] == ["fresh", "old"]
    store.close()


def test_expired_streams_leave_room_for_new_ones(tmp_path: Path) -> None:
    clock = Clock()
    store = StreamStore(tmp_path / "streams.sqlite3", max_streams=2, idle_seconds=60, clock=clock)
    one = np.array([1.0])
    store.append("a", "x", one, None, None, DEFAULT)
    store.append("a", "y", one, None, None, DEFAULT)
    with pytest.raises(TooManyStreams):
        store.append("a", "z", one, None, None, DEFAULT)
    clock.now += 61
    store.append("a", "z", one, None, None, DEFAULT)
    store.close()


def test_streams_never_expire_with_idle_seconds_0(tmp_path: Path) -> None:
    clock = Clock()
    store = StreamStore(tmp_path / "streams.sqlite3", max_streams=2, idle_seconds=0, clock=clock)
    store.append("a", "x", np.array([1.0]), None, None, DEFAULT)
    clock.now += 100 * 365 * 86400
    assert store.get("a", "x").points == 1
    store.close()


def test_pages_cover_every_stream_once_in_id_order_while_streams_come_and_go(tmp_path: Path) -> None:
    store = StreamStore(tmp_path / "streams.sqlite3", max_streams=100)
    one = np.array([1.0])
    names = [f"s{i:02d}" for i in range(0, 40, 2)]
    for name in names:
        store.append("a", name, one, None, None, DEFAULT)
    store.append("b", "s03", one, None, None, DEFAULT)  # another owner's: never in a's pages
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = store.list("a", 7, cursor)
        seen += [s.series_id for s in page]
        pages += 1
        if pages == 2:  # between pages: one seen deleted, one ahead deleted, one added ahead and one behind
            store.delete("a", "s00")
            store.delete("a", "s30")
            store.append("a", "s31", one, None, None, DEFAULT)
            store.append("a", "s01", one, None, None, DEFAULT)
        if cursor is None:
            break
    expected = sorted(set(names) - {"s30"} | {"s31"})
    assert seen == expected and pages == 3
    page, cursor = store.list("a", 19)
    assert len(page) == 19 and cursor == page[-1].series_id == "s36"
    assert store.list("a", 20)[1] is None and store.list("a", 1, "s38") == ([], None)  # a full last page: no cursor
    store.close()


OLD_SCHEMA = """CREATE TABLE streams (id TEXT PRIMARY KEY, sensitivity REAL NOT NULL, points INTEGER NOT NULL,
last_time REAL, created REAL NOT NULL, updated REAL NOT NULL, state BLOB NOT NULL)"""


def write_old_file(path: Path, values: np.ndarray, updated: float | None = None) -> None:
    """A streams file as the versions before owners wrote it: one stream "legacy" with `values` scored."""
    state = DetectorState()
    Detector().update(state, values)
    now = time.time() if updated is None else updated
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        row = (state.seen, now - 10, now, state.to_bytes())
        db.execute("INSERT INTO streams VALUES ('legacy', 0.5, ?, NULL, ?, ?, ?)", row)
    db.close()


def test_a_file_from_before_owners_is_migrated_and_its_streams_go_on(tmp_path: Path) -> None:
    path = tmp_path / "streams.sqlite3"
    values = seasonal()[:1300]
    write_old_file(path, values[:1000])
    stores = [StreamStore(path, max_streams=10) for _ in range(2)]  # two processes opening it at once
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda store: store.get(NO_OWNER, "legacy").points, stores))
    assert got == [1000, 1000]
    _, scored, first = stores[1].append(NO_OWNER, "legacy", values[1000:], None, None, DEFAULT)
    whole = Detector().update(DetectorState(), values)
    assert first == 1000
    np.testing.assert_array_equal(scored.alarm, whole.alarm[1000:])
    with pytest.raises(StreamNotFound):
        stores[0].get("some-key", "legacy")  # old streams belong to no key
    stores[0].append("some-key", "legacy", values[:10], None, None, DEFAULT)  # a key's own "legacy"
    assert stores[0].get(NO_OWNER, "legacy").points == 1300
    for store in stores:
        store.close()
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert tables == {"streams"}


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM streams").fetchone()
    db.close()
    return count


@pytest.mark.slow  # SQLite's busy wait: 5 s
def test_a_file_held_by_another_process_too_long_is_overloaded_not_a_storage_failure(tmp_path: Path) -> None:
    path = tmp_path / "streams.sqlite3"
    store = StreamStore(path, max_streams=10)
    store.append("", "a", np.array([1.0]), None, None, DEFAULT)
    other = sqlite3.connect(path, isolation_level=None)  # e.g. an operator's sqlite3 shell in a write transaction
    other.execute("BEGIN IMMEDIATE")
    try:
        assert store.get("", "a").points == 1  # readers are not held up (WAL)
        with pytest.raises(Overloaded):
            store.append("", "a", np.array([2.0]), None, None, DEFAULT)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.append("", "a", np.array([2.0]), None, None, DEFAULT)[0].points == 2
    store.close()
