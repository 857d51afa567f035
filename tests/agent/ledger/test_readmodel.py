"""The ledger's read models: rows with sync/print state, the newest or searched rows, status."""

from __future__ import annotations

from agent import transactions
from agent.ledger import Ledger, readmodel
from tests.conftest import ELEC


def _sale(ledger: Ledger, amount: str, service: str = ELEC["service"]) -> transactions.TxnView:
    fields = dict(ELEC["fields"]) if service == ELEC["service"] else {"consumer_number": "123456"}
    return transactions.create(ledger, transactions.NewTxn(service, amount, "op1", fields=fields))


def test_recent_is_newest_first_and_filters(ledger: Ledger) -> None:
    views = [_sale(ledger, str(i)) for i in range(1, 5)] + [_sale(ledger, "7", "WATER_BILL")]
    assert [r["seq"] for r in ledger.recent(3)] == [5, 4, 3]
    assert [r["seq"] for r in ledger.recent(3, search="elec")] == [4, 3, 2]  # service-code prefix
    assert [r["seq"] for r in ledger.recent(50, search=views[1]["token"])] == [2]
    assert [r["seq"] for r in ledger.recent(50, search=views[2]["txn_id"])] == [3]
    assert ledger.recent(50, search="EL%") == [] and ledger.recent(50, search="ELEC\\") == []  # no wildcards
    readmodel.materialise(ledger.conn, 4)  # as sync does: seq 5 stays past the frontier
    ledger.conn.execute("UPDATE outbox SET state = 'acked' WHERE seq <= 3")
    ledger.conn.execute("UPDATE outbox SET state = 'rejected', last_error = 'x' WHERE seq = 4")
    assert [r["seq"] for r in ledger.recent(50, pending=True)] == [5]
    [rejected] = ledger.recent(50, rejected=True)
    assert rejected["seq"] == 4 and rejected["sync_state"] == "rejected" and rejected["sync_error"] == "x"


def test_status_counts_from_the_outbox(ledger: Ledger) -> None:
    for i in range(4):
        _sale(ledger, str(10 + i))
    readmodel.materialise(ledger.conn, 3)  # seq 4 has no outbox row: pending all the same
    ledger.conn.execute("UPDATE outbox SET state = 'acked' WHERE seq = 1")
    ledger.conn.execute("UPDATE outbox SET state = 'sent' WHERE seq = 2")
    ledger.conn.execute("UPDATE outbox SET state = 'rejected' WHERE seq = 3")
    st = ledger.status()
    assert st.outbox == {"pending": 1, "sent": 1, "acked": 1, "rejected": 1, "waiting": 2}
    assert st.queue_depth == 2 and st.count == st.head_seq == 4 and st.head_hash == ledger.head()[1]
    assert st.device_id == ledger.device_id and st.kiosk_code is None and st.last_sync_at is None
    assert st.tokens_remaining == ledger.tokens_remaining() and st.issue_rate_per_day > 0
    assert st.tokens_days_left == round(st.tokens_remaining / st.issue_rate_per_day, 1)
    ledger.set_meta({"last_sync_at": "2025-01-01T00:00:00Z", "lsp_id": "LSP1"})
    assert ledger.status().last_sync_at == "2025-01-01T00:00:00Z" and ledger.status().lsp_id == "LSP1"


def test_find_by_every_kind_of_reference(ledger: Ledger) -> None:
    v = _sale(ledger, "5")
    for ref in (v["token"], v["txn_id"], "1", f"  {v['token']} "):
        assert ledger.find(ref)["seq"] == 1
    readmodel.materialise(ledger.conn, 10)
    ledger.conn.execute("UPDATE outbox SET final_token = '12345678901' WHERE seq = 1")
    row = ledger.find("12345678901")
    assert row["seq"] == 1 and row["final_token"] == "12345678901" and row["voided_by"] is None
    assert ledger.record_hash(1) == row["hash"] and ledger.record_hash(2) is None


def test_an_append_writes_no_outbox_row_and_the_first_batch_gives_rows(ledger: Ledger) -> None:
    from agent.ledger.outbox import LedgerOutbox

    for i in range(3):
        _sale(ledger, str(20 + i))
    assert ledger.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert [r["sync_state"] for r in ledger.rows()] == ["pending"] * 3
    assert [r["seq"] for r in ledger.rows(pending_only=True)] == [1, 2, 3]
    batch = LedgerOutbox(ledger).next_batch(2, 1 << 20)
    assert batch is not None and batch.seqs == [1, 2] and batch.was_pending == {1, 2}
    rows = ledger.conn.execute("SELECT seq, state, attempts FROM outbox ORDER BY seq").fetchall()
    assert rows == [(1, "sent", 1), (2, "sent", 1)]  # seq 3 is still past the frontier
    assert ledger.outbox_counts() == {"pending": 1, "sent": 2, "acked": 0, "rejected": 0, "waiting": 3}
    LedgerOutbox(ledger).not_sent(batch)
    assert ledger.outbox_counts()["pending"] == 3
    again = LedgerOutbox(ledger).next_batch(10, 1 << 20)
    assert again is not None and again.seqs == [1, 2, 3] and again.was_pending == {1, 2, 3}
