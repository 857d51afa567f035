"""A month (November 2026, IST) of four kiosks of one LSP, driven through the server's HTTP API on
its injected clock: ``good`` syncs every evening and beats every day; ``late`` holds two days of
sales and sends them days later; ``silent`` stops sending heartbeats after the 10th; ``forked``
sends a second, different record for a number it already used on the 12th. One more kiosk belongs
to another LSP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from server_stub.admin import NewLsp
from tests.server_stub.conftest import Harness
from tests.server_stub.kiosk_fake import FakeKiosk

IST = ZoneInfo("Asia/Kolkata")
MONTH = "2026-11"
DAYS = 30
SALE_PAISE = 150_000  # ELEC_BILL: fee Rs 10, commission 0.5 % of the amount = Rs 7.50
COMMISSION_PER_SALE = 750
SILENT_AFTER = 10
FORK_DAY = 12
HELD_BACK = (5, 6)  # the late kiosk sends these days' sales with the 7th's


def ist_ms(month: int, day: int, hh: int, mm: int = 0) -> int:
    return int(datetime(2026, month, day, hh, mm, tzinfo=IST).timestamp() * 1000)


def set_clock(h: Harness, fakes: list[FakeKiosk], ms: int) -> None:
    h.clock.offset = ms / 1000 - time.time()
    for f in fakes:
        f.now = h.clock()


@dataclass
class Month:
    lsp: NewLsp
    other: NewLsp
    kiosks: dict[str, FakeKiosk]  # good, late, silent, forked, other


def _sale(fake: FakeKiosk, day: int) -> dict[str, object]:
    return fake.make_record(
        service="ELEC_BILL", amount_paise=SALE_PAISE, fee_paise=1000, created_at=ist_ms(11, day, 10)
    )


def _statuses(fake: FakeKiosk, recs: list[dict[str, object]]) -> list[str]:
    resp = fake.push(recs)
    assert resp.status_code == 200, resp.text
    return [a.get("reason") or a["status"] for a in resp.json()["acks"]]


def _fork(fake: FakeKiosk) -> None:
    used = fake.chain[-1]
    fork = fake.make_record(
        seq=used["seq"],  # type: ignore[arg-type]
        prev_hash=fake.chain[-2]["hash"],
        append=False,
        token=used["token"],  # type: ignore[arg-type]
        amount_paise=SALE_PAISE + 100,
        created_at=ist_ms(11, FORK_DAY, 11),
    )
    assert _statuses(fake, [fork]) == ["fork"]


def _day(h: Harness, m: Month, day: int, pending: dict[str, list[dict[str, object]]]) -> None:
    set_clock(h, list(m.kiosks.values()), ist_ms(11, day, 18))
    for name, fake in m.kiosks.items():
        if not (name == "silent" and day > SILENT_AFTER):
            beat = fake.call("POST", "/v1/heartbeat", {"head_seq": len(fake.chain)})
            assert beat.status_code == 200, beat.text
        pending.setdefault(name, []).append(_sale(fake, day))
        if name == "late" and day in HELD_BACK:
            continue
        assert _statuses(fake, pending.pop(name)) == ["accepted"] * (3 if name == "late" and day == 7 else 1)
        if name == "forked" and day == FORK_DAY:
            _fork(fake)


def simulate(h: Harness) -> Month:
    lsp, other = h.lsp("Month LSP"), h.lsp("Other LSP")
    set_clock(h, [], ist_ms(10, 31, 20))  # enrolled the evening before the month
    kiosks = {name: h.enrolled(lsp.lsp_id) for name in ("good", "late", "silent", "forked")}
    kiosks["other"] = h.enrolled(other.lsp_id)
    m = Month(lsp, other, kiosks)
    pending: dict[str, list[dict[str, object]]] = {}
    for day in range(1, DAYS + 1):
        _day(h, m, day, pending)
    set_clock(h, list(kiosks.values()), ist_ms(12, 2, 9))  # the month is over
    return m
