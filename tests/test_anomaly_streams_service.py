"""The stream routes as an operator runs them, on real servers: with API keys each key has its own streams (two
worker processes sharing the file, `deepserve serve --workers 2`), a per-key quota besides the global limit, idle
streams expire, the list comes a page at a time however many streams there are, and a file from before owners
keeps its streams."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.config import Settings
from app.families.anomaly.detector import Detector, DetectorState
from tests.support.paths import COMMITTED_MODELS
from tests.support.seasonal import seasonal
from tests.support.service import assert_error, cli_client, uvicorn_client

pytestmark = pytest.mark.slow  # real servers
ALICE, BOB, CAROL = "alice-0123456789abcdef", "bob-0123456789abcdef01", "carol-0123456789abcdef"
DETECTOR = {"models_dir": COMMITTED_MODELS, "models": ["nearest_context"]}
IDLE_SECONDS = 3600


def key_name(key: str) -> str:
    """The name app/http/middleware/auth.py gives a key from DEEPSERVE_API_KEYS: the stream's owner in the file."""
    return f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def as_(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def post(client: httpx.Client, key: str, series_id: str, body: dict) -> httpx.Response:
    return client.post(f"/anomaly/streams/{series_id}/points", json=body, headers=as_(key))


def listed(client: httpx.Client, key: str) -> dict[str, int]:
    response = client.get("/anomaly/streams", headers=as_(key))
    assert response.status_code == 200, response.text
    return {s["series_id"]: s["points"] for s in response.json()["streams"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def service(data: Path):
    """Two worker processes; every request on a new connection, so requests spread over both."""
    env = {
        "DEEPSERVE_DATA_DIR": str(data),
        "DEEPSERVE_MODELS": "nearest_context",
        "DEEPSERVE_API_KEYS": f"{ALICE},{BOB},{CAROL}",
        "DEEPSERVE_MAX_STREAMS": "5",
        "DEEPSERVE_MAX_STREAMS_PER_CLIENT": "3",
        "DEEPSERVE_STREAM_IDLE_SECONDS": str(IDLE_SECONDS),
    }
    with cli_client(COMMITTED_MODELS, 2, env) as client:
        yield client


@pytest.fixture
def clean(service: httpx.Client):
    yield service
    for key in (ALICE, BOB, CAROL):
        for series_id in listed(service, key):
            service.delete(f"/anomaly/streams/{series_id}", headers=as_(key))


def test_another_keys_stream_is_as_absent_as_one_never_created(clean: httpx.Client) -> None:
    client = clean
    for part in np.array_split(seasonal()[:400], 4):
        assert post(client, ALICE, "checkout", {"values": part.tolist(), "sensitivity": 0.7}).status_code == 200
    hidden = []
    for _ in range(4):  # on new connections: both worker processes
        hidden.append(client.get("/anomaly/streams/checkout", headers=as_(BOB)))
        assert_error(client.delete("/anomaly/streams/checkout", headers=as_(BOB)), 404, "stream_not_found")
        assert listed(client, BOB) == {}
        assert client.get("/anomaly/streams/checkout", headers=as_(ALICE)).json()["points"] == 400
    # Bob's points and sensitivity (a re-tune) go to a stream of his own with that id; Alice's is untouched.
    for sensitivity in (0.2, 0.9):
        bob = post(client, BOB, "checkout", {"values": [1.0, 2.0, 3.0], "sensitivity": sensitivity})
        assert bob.status_code == 200 and bob.json()["stream"]["sensitivity"] == sensitivity
    assert bob.json()["first_index"] == 3 and bob.json()["stream"]["points"] == 6
    alice = client.get("/anomaly/streams/checkout", headers=as_(ALICE)).json()
    assert alice["points"] == 400 and alice["sensitivity"] == 0.7
    assert listed(client, ALICE) == {"checkout": 400} and listed(client, BOB) == {"checkout": 6}
    assert client.delete("/anomaly/streams/checkout", headers=as_(BOB)).status_code == 204
    assert client.get("/anomaly/streams/checkout", headers=as_(ALICE)).json()["points"] == 400
    assert client.delete("/anomaly/streams/checkout", headers=as_(ALICE)).status_code == 204
    # Deleted, Alice's stream answers Alice exactly as it answered Bob while it existed: nothing told them apart.
    gone = client.get("/anomaly/streams/checkout", headers=as_(ALICE))
    assert_error(gone, 404, "stream_not_found")
    assert all(h.status_code == 404 and h.json() == gone.json() for h in hidden)


def test_each_key_has_a_quota_besides_the_global_limit_and_the_429_says_which(clean: httpx.Client) -> None:
    client, one = clean, {"values": [1.0]}
    for i in range(3):
        assert post(client, ALICE, f"a{i}", one).status_code == 200
    mine = assert_error(post(client, ALICE, "a3", one), 429, "too_many_streams")
    assert mine["detail"] == {"limit": "max_streams_per_client", "max_streams_per_client": 3}
    assert "DEEPSERVE_MAX_STREAMS_PER_CLIENT" in mine["message"]
    assert post(client, ALICE, "a0", one).status_code == 200  # an existing stream still takes points
    for i in range(2):
        assert post(client, BOB, f"b{i}", one).status_code == 200
    everyone = assert_error(post(client, CAROL, "c0", one), 429, "too_many_streams")  # 5 streams: the service's limit
    assert everyone["detail"] == {"limit": "max_streams", "max_streams": 5}


def test_an_idle_stream_expires_for_every_worker(clean: httpx.Client, data: Path) -> None:
    client = clean
    for series_id in ("stale", "live"):
        assert post(client, ALICE, series_id, {"values": seasonal()[:200].tolist()}).status_code == 200
    with sqlite3.connect(data / "anomaly_streams.sqlite3") as db:  # as if its last points came long ago
        db.execute("UPDATE streams SET updated = updated - ? WHERE id = 'stale'", (IDLE_SECONDS + 60,))
    db.close()
    for _ in range(4):
        assert_error(client.get("/anomaly/streams/stale", headers=as_(ALICE)), 404, "stream_not_found")
        assert listed(client, ALICE) == {"live": 200}
    with sqlite3.connect(data / "anomaly_streams.sqlite3") as db:
        assert db.execute("SELECT id FROM streams").fetchall() == [("live",)]  # deleted, not only hidden
    db.close()
    again = post(client, ALICE, "stale", {"values": [1.0]}).json()  # the id starts a new stream
    assert again["first_index"] == 0 and again["stream"]["points"] == 1


# --- a page at a time -------------------------------------------------------------------------------------------

MANY = 100_000


def write_streams(path: Path, owner: str, count: int) -> None:
    """`count` streams of `owner` straight into a streams file (their state is never read by a list)."""
    now = time.time()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE streams (owner TEXT NOT NULL, id TEXT NOT NULL, sensitivity REAL NOT NULL, "
            "points INTEGER NOT NULL, last_time REAL, created REAL NOT NULL, updated REAL NOT NULL, "
            "state BLOB NOT NULL, PRIMARY KEY (owner, id))"
        )
        rows = ((owner, f"s{i:06d}", 0.5, i, None, now, now, b"") for i in range(count))
        db.executemany("INSERT INTO streams VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()


def test_100k_streams_list_a_bounded_page_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_streams(data / "anomaly_streams.sqlite3", "", MANY)
    with uvicorn_client(Settings(**DETECTOR, data_dir=data)) as client:
        first = client.get("/anomaly/streams")
        assert first.status_code == 200 and len(first.content) < 50_000
        body = first.json()
        assert [s["series_id"] for s in body["streams"]] == [f"s{i:06d}" for i in range(100)]
        assert body["next"] == "s000099"
        second = client.get("/anomaly/streams", params={"after": body["next"], "limit": 1000}).json()
        assert second["streams"][0]["series_id"] == "s000100" and len(second["streams"]) == 1000
        assert second["next"] == "s001099"
        last = client.get("/anomaly/streams", params={"after": f"s{MANY - 3:06d}", "limit": 1000}).json()
        assert [s["series_id"] for s in last["streams"]] == [f"s{MANY - 2:06d}", f"s{MANY - 1:06d}"]
        assert last["next"] is None
        for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "all"}, {"after": "no spaces"}):
            assert_error(client.get("/anomaly/streams", params=bad), 422, "invalid_input")


# --- files from before owners -----------------------------------------------------------------------------------


def test_a_streams_file_from_before_owners_keeps_its_streams(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    values = seasonal()[:1300]
    state = DetectorState()
    Detector().update(state, values[:1000])
    with sqlite3.connect(data / "anomaly_streams.sqlite3") as db:  # the table as the versions before wrote it
        db.execute(
            "CREATE TABLE streams (id TEXT PRIMARY KEY, sensitivity REAL NOT NULL, points INTEGER NOT NULL, "
            "last_time REAL, created REAL NOT NULL, updated REAL NOT NULL, state BLOB NOT NULL)"
        )
        now = time.time()
        db.execute("INSERT INTO streams VALUES ('web', 0.5, 1000, NULL, ?, ?, ?)", (now, now, state.to_bytes()))
    db.close()
    with uvicorn_client(Settings(**DETECTOR, data_dir=data, api_keys=[ALICE])) as client:
        assert_error(client.get("/anomaly/streams/web", headers=as_(ALICE)), 404, "stream_not_found")  # not a key's
        assert listed(client, ALICE) == {}
    with uvicorn_client(Settings(**DETECTOR, data_dir=data)) as client:  # keys off: the one owner's streams
        assert client.get("/anomaly/streams/web").json()["points"] == 1000
        after = client.post("/anomaly/streams/web/points", json={"values": values[1000:].tolist()}).json()
    whole = Detector().update(DetectorState(), values)
    assert after["first_index"] == 1000 and after["is_anomaly"] == whole.alarm[1000:].tolist()
