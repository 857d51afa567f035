"""agent/clock.py: the PC's clock corrected by the server's offset, and a step caught in between."""

from __future__ import annotations

from agent.clock import KioskClock, alert

DAY_MS = 86_400_000


class Fake:
    def __init__(self) -> None:
        self.wall_ms = 1_700_000_000_000
        self.boot_s = 1000.0

    def tick(self, s: float) -> None:
        self.wall_ms += round(s * 1000)
        self.boot_s += s


def test_offset_corrects_the_wall_clock_and_moves_only_by_a_second_or_more() -> None:
    f = Fake()
    c = KioskClock(lambda: f.wall_ms, elapsed=lambda: f.boot_s)
    assert c.now_ms() == f.wall_ms
    assert c.learn(2 * 86_400) is True and c.now_ms() == f.wall_ms + 2 * DAY_MS
    assert c.learn(2 * 86_400 + 0.4) is False and c.offset_ms == 2 * DAY_MS


def test_a_step_after_the_last_answer_is_ignored_until_the_next() -> None:
    f = Fake()
    c = KioskClock(lambda: f.wall_ms, elapsed=lambda: f.boot_s)
    c.learn(0)
    f.tick(30)
    server_now = f.wall_ms
    f.wall_ms -= DAY_MS  # the operator sets the PC back a day
    assert c.stepped and abs(c.now_ms() - server_now) < 5
    f.tick(10)
    assert abs(c.now_ms() - (server_now + 10_000)) < 5
    c.learn(86_400)  # the next answer: the server is a day ahead of the PC now
    assert not c.stepped and abs(c.now_ms() - (server_now + 10_000)) < 5


def test_without_an_answer_since_start_only_the_stored_offset_applies() -> None:
    f = Fake()
    c = KioskClock(lambda: f.wall_ms, 5000, elapsed=lambda: f.boot_s)
    f.wall_ms -= DAY_MS
    assert not c.stepped and c.now_ms() == f.wall_ms + 5000


def test_alert_past_the_margin() -> None:
    assert alert(100, 120) is None
    assert alert(-121.4, 120) == {"code": "clock_wrong", "severity": "warning", "detail": {"offset_s": -121}}
