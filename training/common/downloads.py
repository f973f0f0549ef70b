"""Downloads a training script makes when it is given no local data (users with internet): without a network, one
line saying what could not be fetched and which flag takes a local copy, instead of a Keras or urllib traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def downloading(what: str, flag: str) -> Iterator[None]:
    """Run a download; any failure of it exits the script with what to pass instead (SystemExit: one line)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # Keras' get_file raises a bare Exception ("URL fetch failure ..."); urllib, OSError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"error: could not download {what} ({reason}); without internet pass {flag}") from exc
