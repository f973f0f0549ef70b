"""Named anomaly streams: each keeps its detector state in SQLite, so points can arrive one request at a time and
nothing is lost across restarts.

One table, one row per stream (its detector state is a few tens of KB whatever the stream's length: the detector
keeps a bounded tail). A stream's first points fix its channels: numbers, one channel; rows, several
(multivariate_stream.py keeps their state, at most two detectors a channel), and a stream of k channels counts as k
streams against the limits (its `width`). A stream belongs to an owner, the API key that created it (NO_OWNER when
keys are off): its key is (owner, id), so two keys may each have a stream "checkout", and every query names the
owner, so another key's stream is as absent as one never created. An append holds its stream's own lock from reading
the state to writing it back, so points sent to one stream are scored in order and none is lost, while other streams
are scored at the same time; each SQL statement holds the connection's lock only while it runs. Other processes
(`deepserve serve --workers N`) share the file but not the locks, so the write-back is a compare-and-swap: it
changes the row only if the row is still the one the append read (same point count and creation time); otherwise the
append reads the stream again and scores its points after the other process's, at most MAX_ATTEMPTS times. The
detector's CPU work never holds a database lock. Every write commits before the call returns; the file is opened on
first use, so a service that never sees a stream never creates it.

A stream idle (no points) for `idle_seconds` is expired: every query skips it at once, and it is deleted when
touched or by a bounded sweep (SWEEP_BATCH rows, oldest first, through an index) each time a stream is created or
a list is read, so expired rows go faster than new ones come, without a background thread. A file that cannot be
used (folder full, read-only or missing, file corrupt) is a StorageUnavailable (503) for the stream routes only.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from app.errors import Overloaded, ServeError, StorageUnavailable, StreamNotFound, TooManyStreams
from app.families.anomaly import multivariate_stream
from app.families.anomaly.detector import Detector, DetectorConfig, DetectorState, Scored
from app.families.anomaly.multivariate_stream import ChannelsScored, ChannelsState, channels_for
from app.families.anomaly.times import to_seconds

log = logging.getLogger("deepserve.streams")

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    sensitivity REAL NOT NULL,
    points INTEGER NOT NULL,
    last_time REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    state BLOB NOT NULL,
    channels TEXT,
    width INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (owner, id)
)
"""
CHANNELS = (  # a file from before channels: its streams have one
    "ALTER TABLE streams ADD COLUMN channels TEXT",
    "ALTER TABLE streams ADD COLUMN width INTEGER NOT NULL DEFAULT 1",
)
INDEX = "CREATE INDEX IF NOT EXISTS streams_by_updated ON streams (updated)"  # the expiry sweep's range
COLUMNS = "owner, id, sensitivity, points, last_time, created, updated, state"  # a file's from before channels
NO_OWNER = ""  # every stream's owner when API keys are off, and that of the rows of files from before owners
OPEN_ATTEMPTS = 50  # opening while another process opens the file too (about 12 s in all)
MAX_ATTEMPTS = 10  # an append that lost the race to another process this often gets 429 (never seen with 2 processes)
SWEEP_BATCH = 100  # expired streams deleted at most per sweep: one bounded statement however many expired
INFO = "SELECT id, points, sensitivity, created, updated, channels FROM streams"
USED = "SELECT COALESCE(SUM(width), 0) FROM streams WHERE updated >= ?"  # a stream of k channels counts k


@dataclass(frozen=True)
class StoredStream:
    series_id: str
    points: int
    sensitivity: float
    created: float  # unix seconds
    updated: float
    channels: list[str] | None = None  # a stream of several channels: their names (None: one channel)

    @classmethod
    def of(cls, row: tuple) -> StoredStream:
        """From a row of INFO."""
        series_id, points, sensitivity, created, updated, channels = row
        names = json.loads(channels) if channels is not None else None
        return cls(series_id, points, sensitivity, created, updated, names)


Key = tuple[str, str]  # (owner, series id)


class StreamLocks:
    """One lock per stream key, created on first use and dropped when nobody holds or waits for it (so keys that
    come and go do not pile up)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Key, tuple[threading.Lock, int]] = {}  # key -> (lock, holders and waiters)

    @contextmanager
    def hold(self, key: Key) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class StreamStore:
    def __init__(
        self,
        path: Path,
        max_streams: int,
        max_per_owner: int = 0,
        idle_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`max_per_owner` bounds each API key's streams (0: only `max_streams`; never applies to NO_OWNER, the
        one owner without keys); `idle_seconds` expires streams (0: never); `clock` is unix seconds (tests move
        it)."""
        self.path, self.max_streams = path, max_streams
        self.max_per_owner, self.idle_seconds, self.clock = max_per_owner, idle_seconds, clock
        self.locks = StreamLocks()
        self._db_lock = threading.Lock()  # the connection: one statement at a time
        self._db: sqlite3.Connection | None = None
        self._failing = False  # the storage failed last time: logged once until it works again

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        """The connection (opened, and the table created or migrated, on first use); a storage failure in the
        block becomes StorageUnavailable, or Overloaded when another process held the file too long."""
        with self._db_lock:
            try:
                if self._db is None:
                    self._db = self._open()
                yield self._db
            except (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError):
                raise  # a bug in a statement, not the storage: a 500 with its traceback
            except (sqlite3.Error, OSError) as error:
                raise self._storage_error(error) from error
            self._failing = False

    def _open(self) -> sqlite3.Connection:
        """The connection, in WAL mode. Switching a file to WAL takes it for itself and answers "database is
        locked" at once (SQLite's busy timeout does not apply) while another process opens it too: retried."""
        for attempt in range(OPEN_ATTEMPTS):
            try:
                return self._open_once()
            except sqlite3.OperationalError as error:
                if attempt == OPEN_ATTEMPTS - 1 or not getattr(error, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _open_once(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:  # one transaction, taken for writing first: workers starting together migrate the file once
                db.execute("BEGIN IMMEDIATE")
                columns = [row[1] for row in db.execute("PRAGMA table_info(streams)")]
                if columns and "owner" not in columns:  # a file from before owners: rekey the table by (owner, id)
                    db.execute("ALTER TABLE streams RENAME TO streams_without_owner")
                    db.execute(SCHEMA)
                    db.execute(
                        f"INSERT INTO streams ({COLUMNS}) SELECT ?, id, sensitivity, points, last_time, created, "
                        "updated, state FROM streams_without_owner",
                        (NO_OWNER,),
                    )
                    db.execute("DROP TABLE streams_without_owner")
                    log.info("anomaly streams: %s migrated to owners (its streams belong to no key)", self.path)
                db.execute(SCHEMA)
                if "width" not in [row[1] for row in db.execute("PRAGMA table_info(streams)")]:  # before channels
                    for statement in CHANNELS:
                        db.execute(statement)
                db.execute(INDEX)
        except BaseException:
            db.close()
            raise
        return db

    def _storage_error(self, error: sqlite3.Error | OSError) -> ServeError:
        name = getattr(error, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return Overloaded(
                "The anomaly streams' file was held by another worker process too long; retry with backoff.",
                headers={"Retry-After": "1"},
            )
        if self._db is not None:  # the next request opens the file afresh (the operator may have replaced it)
            with suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        if not self._failing:
            log.error("anomaly streams: %s cannot be used: %s (stream routes answer 503)", self.path, error)
        self._failing = True
        return StorageUnavailable(
            "The service cannot use its anomaly streams' storage: its data folder (DEEPSERVE_DATA_DIR) is full, "
            f"read-only or not a folder, or its {self.path.name} is unreadable or corrupt. The operator must free "
            "space or fix the folder; the other routes keep working.",
            {"reason": reason},
            headers={"Retry-After": "60"},
        )

    def _cutoff(self) -> float:
        """Streams last updated before this are expired."""
        return self.clock() - self.idle_seconds if self.idle_seconds else -math.inf

    def _sweep(self, db: sqlite3.Connection, cutoff: float) -> None:
        """Delete up to SWEEP_BATCH expired streams; a read of the index alone when there are none (no write)."""
        if db.execute("SELECT 1 FROM streams WHERE updated < ? LIMIT 1", (cutoff,)).fetchone():
            db.execute(
                "DELETE FROM streams WHERE rowid IN "
                "(SELECT rowid FROM streams WHERE updated < ? ORDER BY updated LIMIT ?)",
                (cutoff, SWEEP_BATCH),
            )

    @staticmethod
    def _forget_expired(db: sqlite3.Connection, key: Key, cutoff: float) -> None:
        db.execute("DELETE FROM streams WHERE owner = ? AND id = ? AND updated < ?", (*key, cutoff))

    def _quota(self, owner: str) -> int:
        return self.max_per_owner if owner != NO_OWNER and self.max_per_owner else self.max_streams

    def _check_room(self, db: sqlite3.Connection, owner: str, cutoff: float, width: int) -> None:
        """429 unless a new stream of `width` channels fits (a stream of k channels counts as k streams)."""
        (count,) = db.execute(USED, (cutoff,)).fetchone()
        counts = f" ({width} channels count as {width} streams)" if width > 1 else ""
        if count + width > self.max_streams:
            raise TooManyStreams(
                f"The service holds {count} streams, its limit (DEEPSERVE_MAX_STREAMS){counts}; delete some first.",
                {"limit": "max_streams", "max_streams": self.max_streams},
                headers={"Retry-After": "60"},
            )
        quota = self._quota(owner)
        (mine,) = db.execute(f"{USED} AND owner = ?", (cutoff, owner)).fetchone()
        if mine + width > quota:
            raise TooManyStreams(
                f"This API key holds {mine} streams, its limit (DEEPSERVE_MAX_STREAMS_PER_CLIENT){counts}; delete "
                "some first.",
                {"limit": "max_streams_per_client", "max_streams_per_client": quota},
                headers={"Retry-After": "60"},
            )

    def append(
        self,
        owner: str,
        series_id: str,
        values: np.ndarray,
        times: list[datetime] | None,
        sensitivity: float | None,
        config: DetectorConfig,
        check: Callable[[int, float | None], object] = lambda at, last: None,
        channels: list[str] | None = None,
    ) -> tuple[StoredStream, Scored | ChannelsScored, int]:
        """Score `values` (NaN: missing; rows x channels for a stream of several channels, named `channels`, None:
        the stream's) after the points of `owner`'s stream (creating it at the first call, which fixes its
        channels) with a detector of `config` (the served nearest_context model's): (the stream after them, their
        scores, the stream index of the first of them). `check(first index, the stream's last time)` runs before
        the scoring (the timestamps' check: it may raise)."""
        key = (owner, series_id)
        with self.locks.hold(key):  # this process's appends take turns; other processes' are caught below
            for _ in range(MAX_ATTEMPTS):
                done = self._try_append(key, values, times, sensitivity, config, check, channels)
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
        key: Key,
        values: np.ndarray,
        times: list[datetime] | None,
        sensitivity: float | None,
        config: DetectorConfig,
        check: Callable[[int, float | None], object],
        sent: list[str] | None,
    ) -> tuple[StoredStream, Scored | ChannelsScored, int] | None:
        """One read -> score -> compare-and-swap round of `append`; None when another process changed the stream
        between the read and the write (nothing written)."""
        owner, series_id = key
        now = self.clock()
        cutoff = self._cutoff()
        width = values.shape[1] if values.ndim == 2 else None
        with self._conn() as db:
            query = (
                "SELECT sensitivity, points, last_time, created, updated, state, channels FROM streams "
                "WHERE owner = ? AND id = ?"
            )
            row = db.execute(query, key).fetchone()
            if row is not None and row[4] < cutoff:  # expired: this append starts the stream anew
                self._forget_expired(db, key, cutoff)
                row = None
            if row is None:
                self._sweep(db, cutoff)
                self._check_room(db, owner, cutoff, width or 1)
        new = row is None
        if row is None:
            row = (0.5 if sensitivity is None else sensitivity, 0, None, now, now, None, None)
        stored_sensitivity, points, last_time, created, _, blob, stored = row
        names = channels_for(series_id, json.loads(stored) if stored else None, not new, width, sent)
        sensitivity = stored_sensitivity if sensitivity is None else sensitivity
        check(points, last_time)
        seconds = [to_seconds(t) for t in times] if times else None
        scored: Scored | ChannelsScored  # the CPU work below: no lock but the stream's
        if names is None:
            one = DetectorState.from_bytes(blob) if blob else DetectorState()
            scored, state = Detector(config, sensitivity).update(one, values), one.to_bytes()
        else:
            several = ChannelsState.from_bytes(blob) if blob else ChannelsState.new(len(names))
            stamps = [t.isoformat() for t in times] if times else None
            scored = multivariate_stream.update(several, values, points, names, sensitivity, config, stamps)
            state = several.to_bytes()
        last_time = seconds[-1] if seconds else last_time
        received = points + len(values)  # missing values included: the stream's indices are the points sent
        with self._conn() as db:
            if new:  # one statement: the counts and the insert cannot be split by another process's insert
                size = len(names) if names else 1
                written = db.execute(
                    f"INSERT OR IGNORE INTO streams ({COLUMNS}, channels, width) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
                    f"WHERE ({USED}) + ? <= ? AND ({USED} AND owner = ?) + ? <= ?",
                    (
                        *key,
                        sensitivity,
                        received,
                        last_time,
                        created,
                        now,
                        state,
                        json.dumps(names) if names else None,
                        size,
                        cutoff,
                        size,
                        self.max_streams,
                        cutoff,
                        owner,
                        size,
                        self._quota(owner),
                    ),
                ).rowcount
                if not written:
                    self._check_room(db, owner, cutoff, size)  # full: 429; else another process created the stream
            else:
                written = db.execute(
                    "UPDATE streams SET sensitivity = ?, points = ?, last_time = ?, updated = ?, state = ? "
                    "WHERE owner = ? AND id = ? AND points = ? AND created = ?",
                    (sensitivity, received, last_time, now, state, *key, points, created),
                ).rowcount
        if not written:
            return None
        return StoredStream(series_id, received, sensitivity, created, now, names), scored, points

    def list(self, owner: str, limit: int, after: str | None = None) -> tuple[list[StoredStream], str | None]:
        """`owner`'s streams in id order, at most `limit` of them, from the first id after `after`: (the page, the
        cursor of the next page: its last id, None when no stream follows). Reads `limit + 1` rows at most."""
        cutoff = self._cutoff()
        with self._conn() as db:
            self._sweep(db, cutoff)
            rows = db.execute(
                f"{INFO} WHERE owner = ? AND id > ? AND updated >= ? ORDER BY id LIMIT ?",
                (owner, after or "", cutoff, limit + 1),
            ).fetchall()
        page = [StoredStream.of(row) for row in rows[:limit]]
        return page, (page[-1].series_id if len(rows) > limit else None)

    def get(self, owner: str, series_id: str) -> StoredStream:
        key, cutoff = (owner, series_id), self._cutoff()
        with self._conn() as db:
            row = db.execute(f"{INFO} WHERE owner = ? AND id = ?", key).fetchone()
            if row is not None and row[4] < cutoff:
                self._forget_expired(db, key, cutoff)
                row = None
        if row is None:
            raise self._unknown(series_id)
        return StoredStream.of(row)

    def delete(self, owner: str, series_id: str) -> None:
        key, cutoff = (owner, series_id), self._cutoff()
        with self.locks.hold(key), self._conn() as db:
            self._forget_expired(db, key, cutoff)  # gone already: 404 below
            deleted = db.execute("DELETE FROM streams WHERE owner = ? AND id = ?", key).rowcount
        if not deleted:
            raise self._unknown(series_id)

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @staticmethod
    def _unknown(series_id: str) -> StreamNotFound:
        return StreamNotFound(f"No stream {series_id!r}; POST points to create it.", {"series_id": series_id})
