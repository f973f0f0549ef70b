"""Named anomaly streams: each keeps its detector state in SQLite, so points can arrive one request at a time and
nothing is lost across restarts.

One table, one row per stream (its detector state is a few tens of KB whatever the stream's length: the detector
keeps a bounded tail). An append holds its stream's own lock from reading the state to writing it back, so points
sent to one stream are scored in order and none is lost, while other streams are scored at the same time; each
SQL statement holds the connection's lock only while it runs. Other processes (`deepserve serve --workers N`) share
the file but not the locks, so the write-back is a compare-and-swap: it changes the row only if the row is still
the one the append read (same point count and creation time); otherwise the append reads the stream again and
scores its points after the other process's, at most MAX_ATTEMPTS times. The detector's CPU work never holds a
database lock. Every write commits before the call returns; the file is opened on first use, so a service that
never sees a stream never creates it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from app.errors import InvalidInput, Overloaded, StreamNotFound, TooManyStreams
from app.families.anomaly.detector import Detector, DetectorConfig, DetectorState, Scored
from app.families.anomaly.times import to_iso, to_seconds

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    sensitivity REAL NOT NULL,
    points INTEGER NOT NULL,
    last_time REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    state BLOB NOT NULL
)
"""
MAX_ATTEMPTS = 10  # an append that lost the race to another process this often gets 429 (never seen with 2 processes)


@dataclass(frozen=True)
class StreamInfo:
    series_id: str
    points: int
    sensitivity: float
    created: float  # unix seconds
    updated: float


class StreamLocks:
    """One lock per stream id, created on first use and dropped when nobody holds or waits for it (so ids that
    come and go do not pile up)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # id -> (lock, holders and waiters)

    @contextmanager
    def hold(self, series_id: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(series_id, (threading.Lock(), 0))
            self._locks[series_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[series_id]
                if users == 1:
                    del self._locks[series_id]
                else:
                    self._locks[series_id] = (lock, users - 1)


class StreamStore:
    def __init__(self, path: Path, max_streams: int) -> None:
        self.path, self.max_streams = path, max_streams
        self.locks = StreamLocks()
        self._db_lock = threading.Lock()  # the connection: one statement at a time
        self._db: sqlite3.Connection | None = None

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock:
            if self._db is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(SCHEMA)
            yield self._db

    def _check_room(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM streams").fetchone()
        if count >= self.max_streams:
            raise TooManyStreams(
                f"The service holds {count} streams, its limit (DEEPSERVE_MAX_STREAMS); delete some first.",
                {"max_streams": self.max_streams},
                headers={"Retry-After": "60"},
            )

    def append(
        self,
        series_id: str,
        values: np.ndarray,
        times: list[datetime] | None,
        sensitivity: float | None,
        config: DetectorConfig,
    ) -> tuple[StreamInfo, Scored, int]:
        """Score `values` after the stream's points (creating it at the first call) with a detector of `config`
        (the served nearest_context model's): (the stream after them, their scores, the stream index of the first
        of them)."""
        with self.locks.hold(series_id):  # this process's appends take turns; other processes' are caught below
            for _ in range(MAX_ATTEMPTS):
                done = self._try_append(series_id, values, times, sensitivity, config)
                if done is not None:
                    return done
        raise Overloaded(
            f"Stream {series_id!r} kept changing under this append (other requests to it in other processes); "
            "retry with backoff.",
            {"series_id": series_id},
            headers={"Retry-After": "1"},
        )

    def _try_append(
        self,
        series_id: str,
        values: np.ndarray,
        times: list[datetime] | None,
        sensitivity: float | None,
        config: DetectorConfig,
    ) -> tuple[StreamInfo, Scored, int] | None:
        """One read -> score -> compare-and-swap round of `append`; None when another process changed the stream
        between the read and the write (nothing written)."""
        with self._conn() as db:
            row = db.execute(
                "SELECT sensitivity, points, last_time, created, state FROM streams WHERE id = ?", (series_id,)
            ).fetchone()
            if row is None:
                self._check_room(db)
        now = time.time()
        new = row is None
        if new:
            row = (0.5 if sensitivity is None else sensitivity, 0, None, now, None)
        stored_sensitivity, points, last_time, created, blob = row
        sensitivity = stored_sensitivity if sensitivity is None else sensitivity
        seconds = [to_seconds(t) for t in times] if times else None
        if seconds and last_time is not None and seconds[0] <= last_time:
            raise InvalidInput(
                "The first timestamp is not after the stream's last one; timestamps must be strictly increasing.",
                {"last_time": to_iso(last_time)},
            )
        state = DetectorState.from_bytes(blob) if blob is not None else DetectorState()
        scored = Detector(config, sensitivity).update(state, values)  # the CPU work: no lock but the stream's
        last_time = seconds[-1] if seconds else last_time
        with self._conn() as db:
            if new:  # one statement: the count and the insert cannot be split by another process's insert
                written = db.execute(
                    "INSERT OR IGNORE INTO streams (id, sensitivity, points, last_time, created, updated, state) "
                    "SELECT ?, ?, ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM streams) < ?",
                    (series_id, sensitivity, state.seen, last_time, created, now, state.to_bytes(), self.max_streams),
                ).rowcount
                if not written:
                    self._check_room(db)  # full: 429; else another process created the stream meanwhile
            else:
                written = db.execute(
                    "UPDATE streams SET sensitivity = ?, points = ?, last_time = ?, updated = ?, state = ? "
                    "WHERE id = ? AND points = ? AND created = ?",
                    (sensitivity, state.seen, last_time, now, state.to_bytes(), series_id, points, created),
                ).rowcount
        if not written:
            return None
        return self._info(series_id, state.seen, sensitivity, created, now), scored, points

    def list(self) -> list[StreamInfo]:
        with self._conn() as db:
            rows = db.execute("SELECT id, points, sensitivity, created, updated FROM streams ORDER BY id").fetchall()
        return [self._info(*row) for row in rows]

    def get(self, series_id: str) -> StreamInfo:
        with self._conn() as db:
            query = "SELECT id, points, sensitivity, created, updated FROM streams WHERE id = ?"
            row = db.execute(query, (series_id,)).fetchone()
        if row is None:
            raise self._unknown(series_id)
        return self._info(*row)

    def delete(self, series_id: str) -> None:
        with self.locks.hold(series_id), self._conn() as db:
            deleted = db.execute("DELETE FROM streams WHERE id = ?", (series_id,)).rowcount
        if not deleted:
            raise self._unknown(series_id)

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @staticmethod
    def _info(series_id: str, points: int, sensitivity: float, created: float, updated: float) -> StreamInfo:
        return StreamInfo(series_id, points, sensitivity, created, updated)

    @staticmethod
    def _unknown(series_id: str) -> StreamNotFound:
        return StreamNotFound(f"No stream {series_id!r}; POST points to create it.", {"series_id": series_id})
