"""Client timestamps as seconds since 1970, and back, for every datetime a request can hold.

pydantic parses years 1 to 9999 with offsets up to a day. `datetime.timestamp()` goes through the C library's
local time for a timestamp without a zone and raises for year 1 (`0001-01-01T00:00:00` was a 500), and
`datetime.fromtimestamp` raises past year 9999 (`9999-12-31T23:59:59-14:00` is year 10000 in UTC: a stream's last
time there made the next append a 500). Subtraction cannot fail, so that is what this does; a timestamp without a
zone is read as UTC (only differences between a series' timestamps matter, and UTC has no daylight-saving jumps).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1)
EPOCH_UTC = EPOCH.replace(tzinfo=UTC)


def to_seconds(t: datetime) -> float:
    """Seconds from 1970-01-01T00:00:00 UTC to `t` (negative before it)."""
    return (t - (EPOCH if t.utcoffset() is None else EPOCH_UTC)).total_seconds()


def to_iso(value: float) -> str:
    """`to_seconds` back to ISO 8601 in UTC, also beyond year 9999 (as seconds then)."""
    try:
        return (EPOCH_UTC + timedelta(seconds=value)).isoformat()
    except OverflowError:
        return f"{value:.0f} seconds after 1970-01-01T00:00:00+00:00"
