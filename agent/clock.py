"""The kiosk's clock: the PC's wall clock corrected by the offset sync learns from the server.

A rural kiosk PC's clock is often days off (a flat CMOS battery) or stepped by hand. The sync
client reads the server's ``Date`` on every answer (``sync.client.SyncClient.offset_s``); the
ledger keeps that offset in its meta table and stamps ``created_at`` with ``wall + offset``, so a
sale lands on the server's day whatever the PC says. ``Ledger.append`` also never stamps a record
before the one it follows (a clock stepped back between two syncs).
"""

from __future__ import annotations

from collections.abc import Callable

from agent import ids


class KioskClock:
    """``now_ms()``: milliseconds since the epoch as the server would read them."""

    def __init__(self, wall: Callable[[], int] = ids.now_ms, offset_ms: int = 0) -> None:
        self.wall = wall
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return self.wall() + self.offset_ms

    @property
    def offset_s(self) -> float:
        return self.offset_ms / 1000

    def learn(self, offset_s: float) -> bool:
        """Take the server's offset (seconds); True when it moved by a second or more."""
        new = round(offset_s * 1000)
        changed = abs(new - self.offset_ms) >= 1000
        if changed:
            self.offset_ms = new
        return changed


def alert(offset_s: float, margin_s: float) -> dict[str, object] | None:
    """status' ``clock_wrong`` (a warning: sales are stamped with the corrected time)."""
    if abs(offset_s) <= margin_s:
        return None
    return {"code": "clock_wrong", "severity": "warning", "detail": {"offset_s": round(offset_s)}}


__all__ = ["KioskClock", "alert"]
