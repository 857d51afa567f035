"""The kiosk's clock: the PC's wall clock corrected by the offset sync learns from the server.

A rural kiosk PC's clock is often days off (a flat CMOS battery) or stepped by hand. The sync
client reads the server's ``Date`` on every answer (``sync.client.SyncClient.offset_s``); the
ledger keeps that offset in its meta table and stamps ``created_at`` with ``wall + offset``, so a
sale lands on the server's day whatever the PC says.

A clock stepped while ``run`` is up (by hand, or a CMOS reset at resume) is caught against the
boot-time clock (``CLOCK_BOOTTIME``: it counts suspend too, and nobody sets it): once the server
has told us the time, a wall clock that has moved more than ``step_ms`` away from what the
boot clock says has elapsed is ignored until the next answer re-learns the offset. Across
processes (the CLI) only the stored offset is known, so ``Ledger.append`` also never stamps a
record before the one it follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent import ids


def _boot_s() -> float:
    clock = getattr(time, "CLOCK_BOOTTIME", None)  # Linux; elsewhere monotonic (Windows' counts sleep)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


class KioskClock:
    """``now_ms()``: milliseconds since the epoch as the server would read them."""

    def __init__(
        self,
        wall: Callable[[], int] = ids.now_ms,
        offset_ms: int = 0,
        *,
        elapsed: Callable[[], float] = _boot_s,
        step_ms: int = 60_000,
    ) -> None:
        self.wall = wall
        self.offset_ms = offset_ms
        self.elapsed = elapsed
        self.step_ms = step_ms
        self._anchor: tuple[int, float] | None = None  # (wall ms, elapsed s) at the last answer

    def now_ms(self) -> int:
        wall = self.wall()
        if self._anchor is not None:
            expected = self._anchor[0] + round((self.elapsed() - self._anchor[1]) * 1000)
            if abs(wall - expected) > self.step_ms:  # the PC clock was stepped since the server spoke
                return expected + self.offset_ms
        return wall + self.offset_ms

    @property
    def stepped(self) -> bool:
        """Whether the wall clock has been stepped since the offset was last learned."""
        if self._anchor is None:
            return False
        expected = self._anchor[0] + round((self.elapsed() - self._anchor[1]) * 1000)
        return abs(self.wall() - expected) > self.step_ms

    @property
    def offset_s(self) -> float:
        return self.offset_ms / 1000

    def learn(self, offset_s: float) -> bool:
        """Take the server's offset (seconds); True when it moved by a second or more."""
        self._anchor = (self.wall(), self.elapsed())
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
