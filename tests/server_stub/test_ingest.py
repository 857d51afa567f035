"""Ingest over real HTTP: enroll, push, resend, forks, foreign tokens, provisional tokens, voids."""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from server_stub.db import devices, quarantine, records
from sync.wire.canonical import genesis_hash
from sync.wire.verhoeff import token_for_serial
from tests.server_stub.conftest import Harness
from tests.server_stub.kiosk_fake import FakeKiosk


def statuses(resp_json: dict) -> Counter:
    return Counter((a["status"], a.get("reason")) for a in resp_json["acks"])


def test_enroll_returns_keys_leases_and_catalog(server: Harness) -> None:
    fake = server.enrolled()
    e = fake.enrollment
    assert e["device_id"] == fake.device_id
    assert e["kiosk_code"].startswith("K")
    assert e["lsp_id"].startswith("LSP")
    assert e["catalog_version"] == 1
    assert len(e["leases"]) == server.config.initial_blocks
    assert all(
        lease["end_serial"] - lease["start_serial"] == server.config.block_size for lease in e["leases"]
    )


def test_push_1000_then_resend_all_duplicates(server: Harness) -> None:
    fake = server.enrolled()
    recs = fake.make_records(1000)
    for i in range(0, 1000, 250):
        resp = fake.push(recs[i : i + 250])
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert statuses(body) == Counter({("accepted", None): 250})
        assert body["head"] == {"seq": i + 250, "hash": recs[i + 249]["hash"]}
    # resend everything, in other batch sizes and gzip: every record is a duplicate
    for i in range(0, 1000, 400):
        resp = fake.push(recs[i : i + 400], encoding="gzip")
        assert resp.status_code == 200, resp.text
        assert statuses(resp.json()) == Counter({("duplicate", None): len(recs[i : i + 400])})
        assert resp.json()["head"]["seq"] == 1000
    with server.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 1000
        stored = conn.execute(sa.select(records.c.hash).where(records.c.seq == 1000)).scalar()
    assert stored == recs[-1]["hash"]


def test_fork_is_quarantined_and_device_flagged(server: Harness) -> None:
    fake = server.enrolled()
    recs = fake.make_records(5)
    assert statuses(fake.push(recs).json()) == Counter({("accepted", None): 5})
    # a restored backup: the same seq 4 and 5 with other content, chained from seq 3
    other = FakeKiosk(server.url, server.session, device_id=fake.device_id)
    other.key = fake.key
    other.leases = fake.leases
    fork4 = other.make_record(seq=4, prev_hash=recs[2]["hash"], amount_paise=999, token=recs[3]["token"])
    fork5 = other.make_record(seq=5, prev_hash=fork4["hash"], token=recs[4]["token"])
    fork6 = other.make_record(seq=6, prev_hash=fork5["hash"], token=fake.next_token())
    resp = fake.push([fork4, fork5, fork6])
    assert resp.status_code == 200
    body = resp.json()
    assert [(a["seq"], a["status"], a["reason"]) for a in body["acks"]] == [
        (4, "rejected", "fork"),
        (5, "rejected", "fork"),
        (6, "rejected", "fork"),
    ]
    assert body["flagged"] is True
    assert body["head"] == {"seq": 5, "hash": recs[4]["hash"]}
    # resending the fork is idempotent: nothing lost, nothing doubled
    assert statuses(fake.push([fork4, fork5, fork6]).json()) == Counter({("rejected", "fork"): 3})
    with server.engine.connect() as conn:
        q = conn.execute(sa.select(quarantine.c.seq, quarantine.c.hash).order_by(quarantine.c.seq)).all()
        assert [(r.seq, r.hash) for r in q] == [(4, fork4["hash"]), (5, fork5["hash"]), (6, fork6["hash"])]
        dev = conn.execute(sa.select(devices).where(devices.c.device_id == fake.device_id)).one()
        assert dev.flagged_at is not None and "fork" in dev.flag_reason
        # the original chain is untouched
        assert conn.execute(sa.select(records.c.hash).where(records.c.seq == 4)).scalar() == recs[3]["hash"]
    # the genuine chain continues
    nxt = fake.make_record()
    assert statuses(fake.push([nxt]).json()) == Counter({("accepted", None): 1})


def test_token_from_another_devices_lease_is_rejected(server: Harness) -> None:
    lsp = server.lsp().lsp_id
    a, b = server.enrolled(lsp), server.enrolled(lsp)
    stolen = token_for_serial(b.leases[0]["start_serial"] + 7)
    rec = a.make_record(token=stolen)
    body = a.push([rec]).json()
    assert body["acks"] == [{"seq": 1, "status": "rejected", "reason": "token_not_leased"}]
    # Signed and chained: kept in quarantine, and the chain moves past it so the kiosk isn't stuck.
    assert body["head"] == {"seq": 1, "hash": rec["hash"]}
    assert a.push([rec]).json()["acks"][0]["reason"] == "token_not_leased"  # resend: same answer
    nxt = a.make_record()
    assert a.push([nxt]).json()["acks"][0]["status"] == "accepted"
    with server.engine.connect() as conn:
        from server_stub.db import quarantine, records

        reasons = [r.reason for r in conn.execute(quarantine.select())]
        assert reasons == ["token_not_leased"]
        assert [r.seq for r in conn.execute(records.select())] == [2]


def test_used_token_and_bad_token_are_rejected(server: Harness) -> None:
    fake = server.enrolled()
    r1 = fake.make_record()
    assert fake.push([r1]).json()["acks"][0]["status"] == "accepted"
    dup_token = fake.make_record(token=r1["token"])
    body = fake.push([dup_token]).json()
    assert body["acks"][0]["reason"] == "token_used"
    bad = fake.make_record(token="12345678901")
    assert fake.push([bad]).json()["acks"][0]["reason"] == "bad_token"
    assert fake.push([fake.make_record()]).json()["acks"][0]["status"] == "accepted"


def test_gap_returns_head_and_resend_from_head_works(server: Harness) -> None:
    fake = server.enrolled()
    recs = fake.make_records(10)
    assert fake.push(recs[:3]).json()["head"]["seq"] == 3
    body = fake.push(recs[6:]).json()
    assert statuses(body) == Counter({("rejected", "gap"): 4})
    assert body["head"] == {"seq": 3, "hash": recs[2]["hash"]}
    body = fake.push(recs[body["head"]["seq"] :]).json()
    assert statuses(body) == Counter({("accepted", None): 7})


def test_bad_signature_blocks_the_rest_of_the_batch(server: Harness) -> None:
    fake = server.enrolled()
    recs = fake.make_records(3)
    wire = fake.batch(recs)
    wire["records"][1]["amount_paise"] += 1  # tampered after signing
    body = fake.call("POST", "/v1/batches", wire).json()
    assert [(a["status"], a.get("reason")) for a in body["acks"]] == [
        ("accepted", None),
        ("rejected", "bad_signature"),
        ("rejected", "blocked"),
    ]


def test_a_resend_is_answered_from_the_stored_hashes_without_verifying_again(server: Harness) -> None:
    """A record stored with the same hash is a duplicate on its hash alone (its signature was
    verified when it was stored): even a resend whose signatures were mangled in transit is
    acked duplicate, while a new record in the same batch is still verified."""
    fake = server.enrolled()
    recs = fake.make_records(4)
    assert statuses(fake.push(recs[:3]).json()) == Counter({("accepted", None): 3})
    wire = fake.batch(recs)
    for r in wire["records"]:
        r["sig"] = "A" * 86 + "=="  # a well-formed signature of nothing
    body = fake.call("POST", "/v1/batches", wire).json()
    assert [(a["status"], a.get("reason")) for a in body["acks"]] == [
        ("duplicate", None),
        ("duplicate", None),
        ("duplicate", None),
        ("rejected", "bad_signature"),  # the one the server does not hold yet
    ]
    with server.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(records)).scalar()
    assert n == 3


def test_provisional_token_gets_final_token(server: Harness) -> None:
    fake = server.enrolled()
    r1 = fake.make_record()
    prov = fake.make_record(token=f"P{fake.kiosk_code}-2")
    body = fake.push([r1, prov]).json()
    final = body["acks"][1]["final_token"]
    assert body["acks"][1]["status"] == "accepted" and final and len(final) == 11
    leased = {s for lease in fake.leases for s in range(lease["start_serial"], lease["end_serial"])}
    assert int(final[:-1]) not in leased  # from the global space, not the device's leases
    # a resend repeats the same final token
    assert fake.push([r1, prov]).json()["acks"][1] == {
        "seq": 2,
        "status": "duplicate",
        "final_token": final,
    }
    # both tokens resolve, from any device
    other = server.enrolled()
    st = other.call("GET", f"/v1/tokens/{prov['token']}").json()
    assert st["status"] == "synced" and st["final_token"] == final and st["kiosk_code"] == fake.kiosk_code
    st = other.call("GET", f"/v1/tokens/{final}").json()
    assert st["status"] == "synced" and st["provisional_token"] == prov["token"]
    assert "mobile" not in st and "fields" not in st
    # someone else's prefix is refused
    wrong = fake.make_record(token="PK99999999-3")
    assert fake.push([wrong]).json()["acks"][0]["reason"] == "bad_provisional_token"


def test_void_and_token_status(server: Harness) -> None:
    fake = server.enrolled()
    sale = fake.make_record()
    void = fake.make_record(kind="void", voids_seq=1, reason="wrong amount", token=sale["token"])
    body = fake.push([sale, void]).json()
    assert statuses(body) == Counter({("accepted", None): 2})
    st = fake.call("GET", f"/v1/tokens/{sale['token']}").json()
    assert st["status"] == "voided" and st["service"] == "ELEC_BILL"
    void2 = fake.make_record(kind="void", voids_seq=1, reason="again", token=sale["token"])
    assert fake.push([void2]).json()["acks"][0]["reason"] == "bad_void"
    unknown = token_for_serial(9_999_999_998)  # well formed, never issued
    assert fake.call("GET", f"/v1/tokens/{unknown}").json()["status"] == "unknown"


def test_leases_heartbeat_and_catalog(server: Harness) -> None:
    fake = server.enrolled()
    new = fake.lease(3)
    assert len(new) == 3
    fake.add_leases(new)
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sync.wire.signing import verify_lease

    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(fake.enrollment["server_sign_public_key"]))
    for lease in new:
        assert verify_lease(
            pub, fake.device_id, lease["lease_id"], lease["start_serial"], lease["end_serial"], lease["sig"]
        )
        assert not verify_lease(
            pub, "someone-else", lease["lease_id"], lease["start_serial"], lease["end_serial"], lease["sig"]
        )
    hb = fake.call("POST", "/v1/heartbeat", {"head_seq": 0, "queue_depth": 0}).json()
    assert hb["head"] == {"seq": 0, "hash": genesis_hash(fake.device_id)} and hb["catalog_version"] == 1
    cat = fake.call("GET", "/v1/catalog?since=0").json()
    assert cat["version"] == 1 and any(s["code"] == "ELEC_BILL" for s in cat["catalog"]["services"])
    assert fake.call("GET", "/v1/catalog?since=1").json() == {"version": 1, "catalog": None}


def _device_reads(statements: list[str]) -> list[str]:
    """The statements that read the devices table (a SELECT, or a WITH whose SELECT does)."""
    reads = [s for s in statements if re.match(r"\s*(SELECT|WITH)\b", s, re.I)]
    return [s for s in reads if re.search(r"\bFROM devices\b", s)]


def test_a_batch_reads_the_device_row_once_per_transaction(server: Harness) -> None:
    """The signed device is read once in the read-only snapshot (its key, K-code and LSP: the
    signatures are checked with no transaction open), then its head and flags once more, locked,
    in the batch's write transaction; a resend held in full needs no second read."""
    fake = server.enrolled()
    first = fake.make_records(20)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    sa.event.listen(server.engine, "before_cursor_execute", seen)
    try:
        assert statuses(fake.push(first).json()) == Counter({("accepted", None): 20})
        accepted = list(statements)
        statements.clear()
        resend = fake.push(first).json()
    finally:
        sa.event.remove(server.engine, "before_cursor_execute", seen)
    assert statuses(resend) == Counter({("duplicate", None): 20})
    reads = _device_reads(accepted)
    assert len(reads) == 2, reads
    assert "kiosks" in reads[0] and "kiosks" not in reads[1]  # the snapshot, then the lock
    if server.engine.dialect.name == "postgresql":  # the lock and the nonce: one statement
        assert "INSERT INTO nonces" in reads[1], reads[1]
    # A batch the server holds in full is answered from the snapshot: one read, and only the
    # nonce is written.
    assert len(_device_reads(statements)) == 1, _device_reads(statements)
    writes = [s for s in statements if re.match(r"\s*(INSERT|UPDATE|DELETE)\b", s, re.I)]
    assert len(writes) == 1 and "nonces" in writes[0], writes
    # ... in two statements: the snapshot (the device joined with the hashes held) and the nonce
    assert [s for s in statements if not re.match(r"\s*BEGIN\b", s, re.I)] == [reads[0], writes[0]]


def test_a_lost_database_connection_fails_one_batch_with_a_503_and_the_next_is_stored(
    server: Harness,
) -> None:
    """The batch's statements go to the driver on PostgreSQL (server_stub/hotpath.py): a backend
    gone from the pool is still a 503 with Retry-After and nothing half-written, and the pool is
    renewed (no pre-ping: the one request that finds the loss pays for it)."""
    if server.engine.dialect.name != "postgresql":
        pytest.skip("a SQLite connection cannot be lost this way")
    backends: set[int] = set()

    def checked_out(dbapi_conn: Any, *_rest: Any) -> None:
        backends.add(dbapi_conn.info.backend_pid)

    sa.event.listen(server.engine, "checkout", checked_out)
    try:
        fake = server.enrolled()
        assert statuses(fake.push(fake.make_records(5)).json()) == Counter({("accepted", None): 5})
    finally:
        sa.event.remove(server.engine, "checkout", checked_out)
    libpq_url = server.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq_url, autocommit=True) as admin:
        for pid in backends:  # every connection the pool holds
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    recs = fake.make_records(5)
    answers = [fake.push(recs)]
    while answers[-1].status_code != 200 and len(answers) < 25:
        answers.append(fake.push(recs))
    *lost, stored = answers
    assert len(lost) == 1, [a.status_code for a in answers]
    assert lost[0].status_code == 503 and lost[0].headers["Retry-After"] == "5"
    assert lost[0].json()["error"] == "unavailable"
    assert statuses(stored.json()) == Counter({("accepted", None): 5})
    with server.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 10


def test_concurrent_resends_of_one_batch_store_it_once(server: Harness) -> None:
    """Batches of one device queue on its row: each answer is from committed state."""
    fake = server.enrolled()
    recs = fake.make_records(30)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: fake.push(recs), range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    counts = sorted(statuses(a.json())[("accepted", None)] for a in answers)
    assert counts == [0, 0, 0, 0, 0, 30]
    assert all(a.json()["head"] == {"seq": 30, "hash": recs[-1]["hash"]} for a in answers)
    with server.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 30


def test_a_batch_stored_while_its_resend_reads_the_snapshot_is_answered_with_its_head(
    server: Harness,
) -> None:
    """The resend's snapshot reads the hashes held, then the device: a first send committed
    between its statements (each sees its own snapshot on PostgreSQL) leaves the resend either
    seeing the records and the head that holds them, or neither; never the records with the
    head from before them."""
    import requests

    fake = server.enrolled()
    recs = fake.make_records(10)
    other = FakeKiosk(server.url, requests.Session(), device_id=fake.device_id)
    other.key = fake.key
    first: list[requests.Response] = []
    armed = [True]

    def after_the_first_read(*_args: Any) -> None:
        if armed:  # the resend's first snapshot read has run: the first send is stored now
            armed.clear()
            first.append(other.push(recs))

    sa.event.listen(server.engine, "after_cursor_execute", after_the_first_read)
    try:
        resend = fake.push(recs)
    finally:
        sa.event.remove(server.engine, "after_cursor_execute", after_the_first_read)
    assert statuses(first[0].json()) == Counter({("accepted", None): 10})
    assert statuses(resend.json()) == Counter({("duplicate", None): 10})
    assert resend.json()["head"] == {"seq": 10, "hash": recs[-1]["hash"]}


# --- the server checks what a kiosk sends against its own data ----------------------------------

MONEY = ("count", "gross_paise", "fee_paise", "commission_paise")


def _recon(server: Harness, lsp: Any, day: str) -> dict[str, Any]:
    doc = server.lsp_get(lsp.api_key, "/v1/reconciliation", params={"date": day}).json()
    return dict(doc["totals"])


def test_forged_records_signed_by_a_real_device_are_quarantined_and_cost_nothing(server: Harness) -> None:
    from server_stub.reconcile import day_of

    lsp = server.lsp()
    fake = server.enrolled(lsp.lsp_id)
    honest = fake.make_record()
    day = day_of(honest["created_at"], "Asia/Kolkata")
    assert fake.push([honest]).json()["acks"][0]["status"] == "accepted"
    before = _recon(server, lsp, day)
    forged = [
        fake.make_record(fee_paise=10**12),  # a fee of Rs 1,000 crore: commission would follow it
        fake.make_record(service="GOLD_LOAN", fee_paise=0),  # no such service in catalog v1
        fake.make_record(amount_paise=20_000_001),  # ELEC_BILL's limit is Rs 2 lakh
        fake.make_record(created_at=server.now_ms() + 2 * 3600 * 1000),  # two hours in the future
    ]
    body = fake.push(forged).json()
    reasons = ["fee_mismatch", "unknown_service", "amount_over_limit", "time_implausible"]
    assert [(a["status"], a.get("reason")) for a in body["acks"]] == [("rejected", r) for r in reasons]
    assert body["head"] == {"seq": 5, "hash": forged[-1]["hash"]}  # the chain moves past them
    nxt = fake.make_record()
    assert fake.push([nxt]).json()["acks"][0]["status"] == "accepted"
    with server.engine.connect() as conn:
        kept = conn.execute(sa.select(quarantine.c.seq, quarantine.c.reason).order_by(quarantine.c.seq)).all()
        assert [(r.seq, r.reason) for r in kept] == list(zip([2, 3, 4, 5], reasons, strict=True))
        assert conn.execute(sa.select(records.c.seq).order_by(records.c.seq)).scalars().all() == [1, 6]
    after = _recon(server, lsp, day)
    expected = {k: 2 * before[k] for k in MONEY}  # the forged four add nothing; the honest one twice
    assert {k: after[k] for k in MONEY} == expected
    days = {day, day_of(forged[-1]["created_at"], "Asia/Kolkata")}  # the future one may be tomorrow
    assert before["rejected"] == 0 and sum(_recon(server, lsp, d)["rejected"] for d in days) == 4


def test_a_sale_on_a_replaced_catalog_after_the_grace_period_is_refused(start_server: Any) -> None:
    import json

    from server_stub import catalog

    server: Harness = start_server(rate_per_s=0, catalog_grace_hours=1)
    fake = server.enrolled()
    doc = json.loads(catalog.bundled_catalog_text())
    doc["version"] = 2
    with server.engine.begin() as conn:
        catalog.add_version(conn, json.dumps(doc), server.now_ms() - 2 * 3600 * 1000)  # in force 2 h ago
    stale = fake.make_record(catalog_version=1)  # still on v1, an hour past the grace period
    fresh = fake.make_record(catalog_version=2)
    assert [a.get("reason") for a in fake.push([stale, fresh]).json()["acks"]] == [
        "catalog_not_in_force",
        None,
    ]


def test_clock_suspect_records_are_accepted_and_counted(server: Harness) -> None:
    from server_stub.reconcile import day_of

    lsp = server.lsp()
    fake = server.enrolled(lsp.lsp_id)
    now = server.now_ms()
    recs = [
        fake.make_record(created_at=now),
        fake.make_record(created_at=now - 20 * 60 * 1000),  # 20 min before the one before it
        fake.make_record(created_at=now + 20 * 60 * 1000),  # 20 min ahead of the server
        fake.make_record(created_at=now + 21 * 60 * 1000),
    ]
    assert [a["status"] for a in fake.push(recs).json()["acks"]] == ["accepted"] * 4
    with server.engine.connect() as conn:
        flags = conn.execute(sa.select(records.c.clock_suspect).order_by(records.c.seq)).scalars().all()
    assert flags == [False, True, True, True]
    days = {day_of(r["created_at"], "Asia/Kolkata") for r in recs}
    assert sum(_recon(server, lsp, d)["clock_suspect"] for d in days) == 3
