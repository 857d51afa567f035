"""Enrollment and sync against a real server process on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from agent import syncing
from agent.errors import InvalidInput, ServerUnreachable
from agent.ledger import open_ledger, verify
from agent.ledger.outbox import LedgerOutbox
from sync.errors import SyncError
from tests.conftest import Kiosk
from tests.e2e.servers import ServerProcess

WATER = ["--service", "WATER_BILL", "--field", "consumer_number=3345678901"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("server")) as srv:
        yield srv


def _enrolled(kiosk: Kiosk, server: ServerProcess) -> dict:
    kiosk.run("init", check=True)
    code = server.new_kiosk()["enrollment_code"]
    return kiosk.json("enroll", "--server", server.url, "--code", code)


def test_enroll_contract_and_refusals(kiosk: Kiosk, server: ServerProcess) -> None:
    kiosk.run("init", check=True)
    bad = kiosk.run("enroll", "--server", server.url, "--code", "NOPE-NOPE-NOPE")
    assert bad.returncode == 2 and "enrollment refused" in bad.stderr
    down = kiosk.run("enroll", "--server", "http://127.0.0.1:9", "--code", "X")
    assert down.returncode == 4 and "nothing changed" in down.stderr
    code = server.new_kiosk()["enrollment_code"]
    doc = kiosk.json("enroll", "--server", server.url, "--code", code)
    assert doc["kiosk_code"].startswith("K") and doc["device_id"] == kiosk.json("status")["device_id"]
    assert doc["tokens_remaining"] > 0
    again = kiosk.run("enroll", "--server", server.url, "--code", code)
    assert again.returncode == 2 and "already enrolled" in again.stderr
    st = kiosk.json("status")
    assert st["kiosk_code"] == doc["kiosk_code"] and st["last_sync_at"] is None
    assert st["tokens"]["remaining"] == doc["tokens_remaining"]


def test_offline_then_sync_once(kiosk: Kiosk, server: ServerProcess) -> None:
    _enrolled(kiosk, server)
    made = [kiosk.json("txn", "new", *WATER, "--amount", str(100 + i)) for i in range(5)]
    assert kiosk.json("status")["outbox"]["pending"] == 5
    res = kiosk.json("sync", "--once")
    assert {k: res[k] for k in ("sent", "accepted", "duplicate", "rejected", "pending")} == {
        "sent": 5,
        "accepted": 5,
        "duplicate": 0,
        "rejected": 0,
        "pending": 0,
    }
    assert all(d["sync_state"] == "acked" for d in kiosk.json("txn", "list"))
    st = kiosk.json("status")
    assert st["last_sync_at"] and st["outbox"]["rejected"] == 0 and st["tokens"]["days_left"] is not None
    again = kiosk.json("sync", "--once")
    assert again["sent"] == 0 and again["pending"] == 0
    assert made[0]["token"] == kiosk.json("txn", "show", made[0]["token"])["token"]


def test_crash_between_send_and_ack_resends_as_duplicates(kiosk: Kiosk, server: ServerProcess) -> None:
    _enrolled(kiosk, server)
    for i in range(7):
        kiosk.run("txn", "new", *WATER, "--amount", str(10 + i), check=True)
    with open_ledger(kiosk.cfg) as led:
        engine = syncing.make_engine(kiosk.cfg, led)
        assert engine is not None
        batch = LedgerOutbox(led).next_batch(4, 1 << 20)
        assert batch is not None and batch.seqs == [1, 2, 3, 4]
        engine.client.push(batch.prev_hash, batch.records)  # the server commits; the agent "dies" here
        assert led.outbox_counts()["sent"] == 4
    res = kiosk.json("sync", "--once")
    assert res["duplicate"] == 4 and res["accepted"] == 3 and res["pending"] == 0


def test_server_down_exit_4_nothing_lost(kiosk: Kiosk, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "srv") as srv:
        _enrolled(kiosk, srv)
    made = [kiosk.json("txn", "new", *WATER, "--amount", str(55 + i)) for i in range(3)]
    proc = kiosk.run("sync", "--once", "--json")
    assert proc.returncode == 4 and proc.stderr.count("\n") == 1 and "wait safely" in proc.stderr
    assert json.loads(proc.stdout)["pending"] == 3
    # no connection was made: nothing was sent, and status / txn show / sync say the same
    out = kiosk.json("status")["outbox"]
    assert out == {"pending": 3, "sent": 0, "acked": 0, "rejected": 0, "waiting": 3}
    assert {kiosk.json("txn", "show", m["token"])["sync_state"] for m in made} == {"pending"}
    with srv:
        assert kiosk.run("sync", "--once").returncode == 0
        assert kiosk.json("status")["outbox"] == {
            "pending": 0,
            "sent": 0,
            "acked": 3,
            "rejected": 0,
            "waiting": 0,
        }


def test_provisional_token_gets_its_final_token(kiosk: Kiosk, server: ServerProcess) -> None:
    enrolled = _enrolled(kiosk, server)
    with open_ledger(kiosk.cfg) as led, led.write() as conn:
        conn.execute("UPDATE leases SET next_serial = end_serial")  # every block spent, offline
    prov = kiosk.json("txn", "new", *WATER, "--amount", "70")
    assert prov["token"] == f"P{enrolled['kiosk_code']}-1"
    kiosk.run("sync", "--once", check=True)
    shown = kiosk.json("txn", "show", prov["token"])
    assert shown["provisional_token"] == prov["token"] and shown["token"] != prov["token"]
    assert len(shown["token"]) == 11
    assert kiosk.json("txn", "show", shown["token"])["txn_id"] == prov["txn_id"]
    assert kiosk.json("txn", "list")[0]["token"] == shown["token"]
    assert kiosk.json("status")["tokens"]["remaining"] > 0  # topped up in the same sync


def test_lease_top_up_and_catalog_pull(kiosk: Kiosk, server: ServerProcess, tmp_path: Path) -> None:
    kiosk.config_path.write_text('[agent]\ndata_dir = "data"\n[tokens]\nmin_remaining = 4500\n')
    enrolled = _enrolled(kiosk, server)
    doc = json.loads((Path(__file__).parents[2] / "agent" / "catalog" / "default.json").read_text())
    doc["version"] = 2
    for s in doc["services"]:
        if s["code"] == "WATER_BILL":
            s["fee_paise"] = 1234
    new_catalog = tmp_path / "catalog.json"
    new_catalog.write_text(json.dumps(doc))
    server.cli("catalog", "load", str(new_catalog))
    kiosk.run("sync", "--once", check=True)
    assert kiosk.json("status")["tokens"]["remaining"] >= 4500 > enrolled["tokens_remaining"]
    water = [s for s in kiosk.json("catalog") if s["code"] == "WATER_BILL"][0]
    assert water["fee_paise"] == 1234
    assert kiosk.json("txn", "new", *WATER, "--amount", "1")["fee_paise"] == 1234
    with open_ledger(kiosk.cfg) as led:
        assert verify(led).ok


def test_before_enrollment_records_sync_and_a_rejected_one_does_not_block(
    kiosk: Kiosk, server: ServerProcess
) -> None:
    kiosk.run("init", check=True)  # no leases at all: a provisional PD<device>-<seq> token
    early = kiosk.json("txn", "new", *WATER, "--amount", "11")
    assert early["token"].startswith("PD")
    kiosk.run("init", "--dev-leases", check=True)  # a development token: the server refuses it
    dev = kiosk.json("txn", "new", *WATER, "--amount", "12")
    code = server.new_kiosk()["enrollment_code"]
    kiosk.json("enroll", "--server", server.url, "--code", code)
    after = kiosk.json("txn", "new", *WATER, "--amount", "13")
    proc = kiosk.run("sync", "--once", "--json")
    assert proc.returncode == 1 and "rejected" in proc.stderr  # the operator is told
    res = json.loads(proc.stdout)
    assert (res["accepted"], res["rejected"], res["pending"]) == (2, 1, 0)
    rows = {d["seq"]: d for d in kiosk.json("txn", "list")}
    assert rows[1]["provisional_token"] == early["token"] and len(rows[1]["token"]) == 11
    assert rows[2]["sync_state"] == "rejected" and rows[2]["sync_error"] == "token_not_leased"
    assert rows[2]["token"] == dev["token"]  # kept, never dropped
    assert rows[3]["sync_state"] == "acked" and rows[3]["token"] == after["token"]
    assert kiosk.json("status")["outbox"]["rejected"] == 1


def _sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy (WAL folded in), as the centre's backup tool would make."""
    import sqlite3

    for side in ("-wal", "-shm"):
        Path(str(dst) + side).unlink(missing_ok=True)
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def test_server_restored_from_backup_gets_everything_again(kiosk: Kiosk, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv")
    kiosk.run("init", "--dev-leases", check=True)
    kiosk.run("txn", "new", *WATER, "--amount", "1", check=True)  # a dev token: refused, kept, chained
    with server:
        kiosk.json("enroll", "--server", server.url, "--code", server.new_kiosk()["enrollment_code"])
    snapshot = tmp_path / "server-backup.db"
    _sqlite_copy(tmp_path / "srv" / "server.db", snapshot)  # the centre's backup, before any record
    kiosk.run("txn", "new", *WATER, "--amount", "2", check=True)
    with server:
        assert kiosk.run("sync", "--once").returncode == 1  # seq 1 rejected, seq 2 accepted
    _sqlite_copy(snapshot, tmp_path / "srv" / "server.db")  # the server is restored from backup
    kiosk.run("txn", "new", *WATER, "--amount", "3", check=True)
    with server:
        first = kiosk.run("sync", "--timeout", "20", "--json")  # head 0: it lost seqs 1-2, resend
        assert first.returncode == 1, first.stderr
        assert kiosk.json("status")["outbox"] == {
            "pending": 0,
            "sent": 0,
            "acked": 2,
            "rejected": 1,
            "waiting": 0,
        }
        again = json.loads(kiosk.run("sync", "--once", "--json").stdout)
        assert again["sent"] == 0  # converged: nothing resent for ever
    db = __import__("sqlite3").connect(tmp_path / "srv" / "server.db")
    try:
        assert [r[0] for r in db.execute("SELECT seq FROM records ORDER BY seq")] == [2, 3]
        assert [r[0] for r in db.execute("SELECT seq FROM quarantine")] == [1]
    finally:
        db.close()


# --- enrollment you can't intercept --------------------------------------------------------------


class RecordingAdapter(requests.adapters.BaseAdapter):
    """Records every request the session would send, and sends none (nothing leaves this process)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.seen.append(request.url or "")
        raise requests.ConnectionError("recorded, not sent")

    def close(self) -> None:
        pass


def _recording_session() -> tuple[requests.Session, RecordingAdapter]:
    session, adapter = requests.Session(), RecordingAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter


def test_http_to_another_machine_is_refused_before_any_connection(kiosk: Kiosk) -> None:
    kiosk.run("init", check=True)
    session, adapter = _recording_session()
    with open_ledger(kiosk.cfg) as led:
        for url in ("http://10.255.255.1:9/", "http://emitra-sync.example", "http://[::ffff:10.0.0.1]:80"):
            with pytest.raises(InvalidInput, match="--insecure"):
                syncing.enroll(kiosk.cfg, led, url, "CODE-CODE-CODE", session=session)
        assert adapter.seen == [] and led.kiosk_code is None  # no attempt, nothing stored
        with pytest.raises(ServerUnreachable):  # --insecure lets it try (recorded, never sent)
            syncing.enroll(kiosk.cfg, led, "http://10.255.255.1:9/", "X", session=session, insecure=True)
        assert adapter.seen == ["http://10.255.255.1:9/v1/enroll"]
        for url in ("http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "https://10.255.255.1:9"):
            with pytest.raises(ServerUnreachable):
                syncing.enroll(kiosk.cfg, led, url, "X", session=session)
    assert len(adapter.seen) == 5


def test_the_cli_refuses_http_off_this_machine_and_sends_nothing(kiosk: Kiosk) -> None:
    """Any attempt would go to a listener on loopback (HTTP_PROXY), never off this machine."""
    import socket

    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen()
        trap.setblocking(False)
        kiosk.run("init", check=True)
        proxy = f"http://127.0.0.1:{trap.getsockname()[1]}"
        kiosk.env.update({"HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "", "no_proxy": ""})
        proc = kiosk.run("enroll", "--server", "http://10.255.255.1:9/", "--code", "CODE-CODE-CODE")
        assert proc.returncode == 2 and "--insecure" in proc.stderr and proc.stderr.count("\n") == 1
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody connected
    assert kiosk.json("status")["kiosk_code"] is None


def test_a_wrong_fingerprint_is_refused_and_nothing_is_stored(kiosk: Kiosk, server: ServerProcess) -> None:
    kiosk.run("init", check=True)
    new = server.new_kiosk()
    wrong = "0" * 64
    proc = kiosk.run(
        "enroll", "--server", server.url, "--code", new["enrollment_code"], "--fingerprint", wrong
    )
    assert proc.returncode == 2 and "do not match the fingerprint" in proc.stderr
    st = kiosk.json("status")
    assert st["kiosk_code"] is None and st["tokens"]["remaining"] == 0
    assert kiosk.run("enroll", "--server", server.url, "--code", "X", "--fingerprint", "abc").returncode == 2
    doc = kiosk.json(
        "enroll",
        "--server",
        server.url,
        "--code",
        new["enrollment_code"],
        "--fingerprint",
        new["server_fingerprint"],
    )  # the right one, with the same code: the server answers its device again
    assert doc["fingerprint_checked"] is True and doc["kiosk_code"] == new["kiosk_code"]


def test_without_a_fingerprint_enrollment_warns_loudly(kiosk: Kiosk, server: ServerProcess) -> None:
    kiosk.run("init", check=True)
    new = server.new_kiosk()
    proc = kiosk.run("enroll", "--server", server.url, "--code", new["enrollment_code"], "--json")
    assert proc.returncode == 0
    assert "WARNING" in proc.stderr and new["server_fingerprint"] in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["fingerprint_checked"] is False and doc["server_fingerprint"] == new["server_fingerprint"]


class CannedCatalog(requests.adapters.BaseAdapter):
    """Answers GET /v1/catalog with a given document (a server gone wrong); records the calls."""

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__()
        self.doc = doc
        self.calls = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        assert "/v1/catalog" in (request.url or "")
        self.calls += 1
        resp = requests.Response()
        resp.status_code, resp._content = 200, json.dumps(self.doc).encode()
        resp.headers["Content-Type"] = "application/json"
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def test_an_empty_catalog_is_never_applied(kiosk: Kiosk, server: ServerProcess) -> None:
    _enrolled(kiosk, server)
    before = kiosk.json("catalog")
    session = requests.Session()
    canned = CannedCatalog({"version": 9, "catalog": {"version": 9, "services": []}})
    session.mount("http://", canned)
    with open_ledger(kiosk.cfg) as led:
        version = LedgerOutbox(led).catalog_version()
        engine = syncing.make_engine(kiosk.cfg, led, session=session)
        assert engine is not None
        with pytest.raises(SyncError):
            engine.pull_catalog()
        assert LedgerOutbox(led).catalog_version() == version < 9
    assert canned.calls == 1 and kiosk.json("catalog") == before


def test_top_up_stops_at_the_servers_lease_cap(kiosk: Kiosk, server: ServerProcess) -> None:
    kiosk.config_path.write_text('[agent]\ndata_dir = "data"\n[tokens]\nmin_remaining = 100000\n')
    _enrolled(kiosk, server)
    res = kiosk.run("sync", "--once", "--json")
    assert res.returncode == 0, res.stderr  # the cap is not an error: the kiosk holds what it may
    assert kiosk.json("status")["tokens"]["remaining"] == 20_000  # the server's lease_cap_min
