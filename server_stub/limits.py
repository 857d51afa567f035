"""Limits every worker shares: fixed-window counters behind a small interface.

:class:`WindowCounter` is the interface (add to a key's count in the current window, get the new
count). :class:`DatabaseCounter` keeps the counts in the server's own database (``rate_windows``:
one row per key), so N uvicorn workers, or N hosts on one PostgreSQL, share them;
:class:`server_stub.shared.RedisCounter` keeps them in Redis (``[server] shared_state``).

Used for failed enrollment attempts (one global key) and token follow-up lookups (one key per
device). The request rates (per device, all devices) are token buckets in :mod:`server_stub.shared`.

A counter opens its own short write transaction: call it before or after a request's own write
transaction, never inside one.
"""

from __future__ import annotations

import math
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from server_stub.db import rate_windows, read, upsert, write
from server_stub.errors import RateLimited

ENROLL_FAILURES = "enroll-failures"


def lookups_key(device_id: str) -> str:
    return f"token-lookups:{device_id}"


class WindowCounter(Protocol):
    def add(self, key: str, window_s: int, now: float, n: int = 1) -> int:
        """Add ``n`` (0 to just read) to ``key``'s count in the window holding ``now``; the count."""
        ...


class DatabaseCounter:
    """Counts in ``rate_windows``, one upsert per call (the row lock or SQLite's write lock makes
    it atomic across workers)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, key: str, window_s: int, now: float, n: int = 1) -> int:
        start = int(now) // window_s * window_s
        with write(self.engine) if n else read(self.engine) as conn:
            if n:
                same_window = rate_windows.c.window_start == start
                upsert(
                    conn,
                    rate_windows,
                    {"key": key, "window_start": start, "count": n},
                    keys=["key"],
                    update={
                        "count": sa.case((same_window, rate_windows.c.count + n), else_=n),
                        "window_start": start,
                    },
                )
            row = conn.execute(
                sa.select(rate_windows.c.window_start, rate_windows.c.count).where(rate_windows.c.key == key)
            ).first()
        return int(row[1]) if row is not None and row[0] == start else 0


def retry_after(window_s: int, now: float) -> int:
    """Seconds until the window holding ``now`` ends (at least 1)."""
    return max(1, math.ceil((int(now) // window_s + 1) * window_s - now))


def check(counter: WindowCounter, key: str, limit: int, window_s: int, now: float, message: str) -> None:
    """Count one more use of ``key``; RateLimited (429 with Retry-After) beyond ``limit``."""
    if counter.add(key, window_s, now) > limit:
        raise RateLimited(message, retry_after(window_s, now))


def refuse_if_over(
    counter: WindowCounter, key: str, limit: int, window_s: int, now: float, message: str
) -> None:
    """RateLimited when ``key`` already reached ``limit`` in this window (counts nothing)."""
    if counter.add(key, window_s, now, 0) >= limit:
        raise RateLimited(message, retry_after(window_s, now))
