"""The in-memory outbox keeps the ledger outbox's rules: the same scenarios run against
sync.memory.MemoryOutbox and agent/ledger/outbox.LedgerOutbox over a real SQLCipher ledger,
so engine tests on the fake say something about the kiosk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import transactions
from agent.ledger import init_ledger, open_ledger
from agent.ledger.outbox import LedgerOutbox
from sync.memory import MemoryOutbox
from sync.outbox import Outbox
from sync.wire import canonical, protocol
from tests.conftest import write_config

Make = Callable[[int], Outbox]


@pytest.fixture(params=["memory", "ledger"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    """``make(n)``: an outbox holding n pending records."""
    opened: list[Any] = []

    def memory(n: int) -> Outbox:
        box = MemoryOutbox()
        for i in range(n):
            box.add(amount_paise=100 + i)
        return box

    def ledger(n: int) -> Outbox:
        from agent import config

        cfg = config.load(str(write_config(tmp_path)), env={})
        init_ledger(cfg, dev_leases=True)
        led = open_ledger(cfg)
        opened.append(led)
        for i in range(n):
            water = {"consumer_number": f"33{i:08d}"}
            transactions.create(led, transactions.NewTxn("WATER_BILL", str(100 + i), "op1", fields=water))
        return LedgerOutbox(led)

    yield memory if request.param == "memory" else ledger
    for led in opened:
        led.close()


def answer(head_seq: int, *acks: tuple[int, str, str | None]) -> protocol.BatchResponse:
    return protocol.BatchResponse(
        acks=[protocol.RecordAck(seq=s, status=st, reason=r) for s, st, r in acks],  # type: ignore[arg-type]
        head=protocol.Head(seq=head_seq, hash="0" * 64),
        flagged=False,
    )


def test_a_batch_is_the_oldest_unacked_run_bounded_by_count_and_marked_sent(make: Make) -> None:
    box = make(5)
    first = box.next_batch(3, 10**6)
    assert first is not None and first.seqs == [1, 2, 3]
    assert first.prev_hash == canonical.genesis_hash(box.device_id)
    assert box.counts() == {"pending": 2, "sent": 3, "acked": 0, "rejected": 0}
    again = box.next_batch(10, 10**6)  # 'sent' is sent again: a crash may have lost the answer
    assert again is not None and again.seqs == [1, 2, 3, 4, 5]
    assert all("prev_hash" not in r and r["sig"] for r in again.records)


def test_a_batch_is_bounded_by_canonical_bytes_but_never_empty(make: Make) -> None:
    box = make(4)
    sizes = [len(canonical.canonical_json(r)) for r in box.next_batch(10, 10**6).records]  # type: ignore[union-attr]
    two = box.next_batch(10, sizes[0] + sizes[1])
    assert two is not None and two.seqs == [1, 2]
    one = box.next_batch(10, 1)
    assert one is not None and one.seqs == [1]


def test_acks_store_accepted_duplicate_transient_and_permanent(make: Make) -> None:
    box = make(5)
    batch = box.next_batch(10, 10**6)
    assert batch is not None
    resp = answer(
        5,
        (1, "accepted", None),
        (2, "duplicate", None),
        (3, "rejected", "gap"),
        (4, "rejected", "token_used"),
        (5, "accepted", None),
        (9, "accepted", None),  # not in this batch: ignored
    )
    counts = box.apply_acks(batch, resp)
    assert (counts.accepted, counts.duplicate, counts.rejected, counts.retry) == (2, 1, 1, 1)
    assert counts.reasons == {"gap": 1, "token_used": 1}
    assert box.counts() == {"pending": 1, "sent": 0, "acked": 3, "rejected": 1}
    nxt = box.next_batch(10, 10**6)
    assert nxt is not None and nxt.seqs == [3]


def test_what_the_servers_head_lacks_goes_back_to_pending_except_a_fork(make: Make) -> None:
    box = make(4)
    batch = box.next_batch(10, 10**6)
    assert batch is not None
    acks = [
        (1, "accepted", None),
        (2, "accepted", None),
        (3, "rejected", "token_used"),
        (4, "rejected", "fork"),
    ]
    box.apply_acks(batch, answer(4, *acks))
    assert box.counts() == {"pending": 0, "sent": 0, "acked": 2, "rejected": 2}
    empty = box.next_batch(10, 10**6)
    assert empty is None
    box.apply_acks(batch, answer(1))  # a server restored from a backup: it holds seq 1 only
    assert box.counts() == {"pending": 2, "sent": 0, "acked": 1, "rejected": 1}
    resend = box.next_batch(10, 10**6)
    assert resend is not None and resend.seqs == [2, 3]
