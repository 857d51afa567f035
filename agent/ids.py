"""Time-ordered ids (UUIDv7, RFC 9562) and time helpers. Time and randomness
are injectable so tests can pin them."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30), "IST")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def uuid7(ms: int | None = None, rand: Callable[[int], bytes] = os.urandom) -> str:
    ms = now_ms() if ms is None else ms
    r = int.from_bytes(rand(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((r >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= r & ((1 << 62) - 1)  # rand_b (62 bits)
    return str(uuid.UUID(int=value))


def iso_utc(ms: int) -> str:
    """2026-11-25T08:46:18.123Z"""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ist_text(ms: int) -> str:
    """For paper and screens: 25-11-2026 14:16 IST."""
    return datetime.fromtimestamp(ms / 1000, IST).strftime("%d-%m-%Y %H:%M IST")
