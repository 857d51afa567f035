"""A kiosk PC whose clock is days off, or stepped back, under Debian's libfaketime (`faketime`),
against a real server on the real clock: every sale lands on the server's IST day, and none is
counted as a late sync or a suspect clock (issue 12, item 4). Before the fix, a clock 2 days
behind booked sales that synced within seconds 2 days back as late syncs; 2 days ahead they were
missing from today; a step back of a day put a sale on the previous day."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Kiosk
from tests.e2e.servers import ServerProcess

pytestmark = pytest.mark.skipif(
    shutil.which("faketime") is None, reason="needs Debian's faketime (apt install faketime; .ci/run does)"
)

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
WATER = ["--service", "WATER_BILL", "--field", "consumer_number=3345678901"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("server")) as srv:
        yield srv


def _at(kiosk: Kiosk, offset: str | None, *args: str) -> Any:
    """`kiosk-agent args --json` with the PC's clock moved by ``offset`` (faketime's "-2d")."""
    argv = kiosk.argv(*args, "--json")
    env = dict(kiosk.env)
    if offset is not None:
        argv = ["faketime", "-f", offset, *argv]
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"  # a real clock step leaves CLOCK_MONOTONIC alone
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, (args, proc.stderr)
    return json.loads(proc.stdout)


def _enrolled(kiosk: Kiosk, server: ServerProcess, offset: str | None) -> str:
    kiosk.config_path.write_text('[agent]\ndata_dir = "data"\n')
    _at(kiosk, offset, "init")
    code = server.new_kiosk()["enrollment_code"]
    return str(_at(kiosk, offset, "enroll", "--server", server.url, "--code", code)["kiosk_code"])


def _sale(kiosk: Kiosk, offset: str | None, amount: int) -> dict[str, Any]:
    return dict(_at(kiosk, offset, "txn", "new", *WATER, "--amount", str(amount)))


def _days(server: ServerProcess, code: str) -> dict[str, dict[str, Any]]:
    """This kiosk's reconciliation rows with anything in them, 3 days either side of today (IST)."""
    today = dt.datetime.now(IST).date()
    out: dict[str, dict[str, Any]] = {}
    for delta in range(-3, 4):
        day = (today + dt.timedelta(days=delta)).isoformat()
        rows = [r for r in _rows(server.reconcile(day)) if r.get("kiosk_code") == code]
        if rows and (rows[0]["count"] or rows[0]["late_syncs"] or rows[0]["clock_suspect"]):
            out[day] = rows[0]
    return out


def _rows(doc: Any) -> list[dict[str, Any]]:
    return list(doc["kiosks"] if isinstance(doc, dict) and "kiosks" in doc else doc)


def _assert_all_today(server: ServerProcess, code: str, sales: int) -> None:
    days = _days(server, code)
    today = dt.datetime.now(IST).date().isoformat()
    assert list(days) == [today], days
    row = days[today]
    assert row["count"] == sales and row["late_syncs"] == 0 and row["clock_suspect"] == 0, row


@pytest.mark.parametrize("offset", ["-2d", "+2d"])
def test_a_clock_days_off_still_books_today(kiosk: Kiosk, server: ServerProcess, offset: str) -> None:
    code = _enrolled(kiosk, server, offset)  # enrollment learns the server's time
    made = [_sale(kiosk, offset, 100 + i) for i in range(3)]
    now = dt.datetime.now(dt.UTC)
    for m in made:
        assert abs(dt.datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")) - now) < dt.timedelta(
            minutes=5
        )
    assert _at(kiosk, offset, "sync", "--once")["accepted"] == 3
    _assert_all_today(server, code, 3)
    st = _at(kiosk, offset, "status")
    assert abs(abs(st["clock_offset_s"]) - 2 * 86_400) < 120
    assert [a["code"] for a in st["alerts"]] == ["clock_wrong"]


def test_a_clock_stepped_back_keeps_the_sale_on_its_day(kiosk: Kiosk, server: ServerProcess) -> None:
    code = _enrolled(kiosk, server, None)
    first = _sale(kiosk, None, 100)
    stepped = _sale(kiosk, "-1d", 101)  # stepped back a day, no sync since: never before the last
    assert stepped["created_at"] >= first["created_at"]
    assert _at(kiosk, "-1d", "sync", "--once")["accepted"] == 2  # ... and now the offset is learned
    learned = _sale(kiosk, "-1d", 102)
    assert learned["created_at"][:10] == dt.datetime.now(dt.UTC).date().isoformat()
    assert _at(kiosk, "-1d", "sync", "--once")["accepted"] == 1
    _assert_all_today(server, code, 3)
