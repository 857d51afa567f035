"""The `kiosk-server` CLI as a real process: the contract outside checks rely on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from server_stub import catalog, reconcile
from tests.server_stub.conftest import free_port, kiosk_server_argv, run_cli, wait_healthy
from tests.server_stub.kiosk_fake import FakeKiosk

RECON_KEYS = {"count", "gross_paise", "fee_paise", "commission_paise", "voids", "late_syncs", "gaps", "forks"}


def ok(db: str, *args: str, cwd: Path | None = None) -> str:
    proc = run_cli(db, *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_init_add_serve_enroll_push_reconcile(db_url: str, tmp_path: Path) -> None:
    ok(db_url, "init", cwd=tmp_path)  # PostgreSQL: the key files go to ./server-data/keys
    assert "up to date" in ok(db_url, "init", cwd=tmp_path)  # idempotent
    lsp = json.loads(ok(db_url, "lsp", "add", "--name", "Acme Services", "--json"))
    assert set(lsp) == {"lsp_id", "api_key"}
    kiosk = json.loads(ok(db_url, "kiosk", "add", "--lsp", lsp["lsp_id"], "--name", "Shop 1", "--json"))
    assert {"kiosk_code", "enrollment_code"} <= set(kiosk)
    port = free_port()
    proc = subprocess.Popen(
        kiosk_server_argv(
            db_url, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, 60, proc)
        fake = FakeKiosk(url)
        assert fake.enroll(kiosk["enrollment_code"])["kiosk_code"] == kiosk["kiosk_code"]
        recs = fake.make_records(3)
        assert [a["status"] for a in fake.push(recs).json()["acks"]] == ["accepted"] * 3
        day = reconcile.day_of(recs[0]["created_at"], "Asia/Kolkata")
        http = requests.get(
            f"{url}/v1/reconciliation",
            params={"date": day},
            headers={"Authorization": f"Bearer {lsp['api_key']}"},
            timeout=30,
        ).json()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err
    doc = json.loads(ok(db_url, "reconcile", "--lsp", lsp["lsp_id"], "--date", day, "--format", "json"))
    assert {"lsp_id", "date", "kiosks", "totals"} <= set(doc)
    assert RECON_KEYS <= set(doc["totals"])
    assert all(RECON_KEYS | {"kiosk_code"} <= set(k) for k in doc["kiosks"])
    assert doc["kiosks"][0]["count"] == 3 and doc["totals"]["count"] == 3
    assert doc == http
    assert fake.device_id in ok(db_url, "device", "revoke", kiosk["kiosk_code"])


def _bad(db: str, *args: str, cwd: Path | None = None) -> str:
    proc = run_cli(db, *args, cwd=cwd)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert "init" in _bad(db, "lsp", "add", "--name", "X")  # not set up yet
    ok(db, "init")
    assert "--name" in _bad(db, "lsp", "add")
    assert "no such LSP" in _bad(db, "kiosk", "add", "--lsp", "LSP9999", "--name", "K")
    lsp = json.loads(ok(db, "lsp", "add", "--name", "A", "--json"))["lsp_id"]
    assert "YYYY-MM-DD" in _bad(db, "reconcile", "--lsp", lsp, "--date", "21-09-2026")
    _bad(db, "reconcile", "--lsp", lsp, "--date", "2026-09-21", "--format", "xml")
    _bad(db, "reconcile", "--lsp", "LSP0404", "--date", "2026-09-21")
    _bad(db, "catalog", "load", str(tmp_path / "missing.json"))
    (tmp_path / "broken.json").write_text("{nope", encoding="utf-8")
    assert "JSON" in _bad(db, "catalog", "load", str(tmp_path / "broken.json"))
    (tmp_path / "v1.json").write_text(catalog.bundled_catalog_text(), encoding="utf-8")
    assert "version" in _bad(db, "catalog", "load", str(tmp_path / "v1.json"))
    _bad(db, "device", "revoke", "nobody")
    _bad("nonsense", "init")
    _bad("mysql://x/y", "init")
    _bad(db, "no-such-command")
    _bad(db, "kiosk", "add", "--lsp", lsp, "--name", "\x01")


def test_catalog_load_adds_a_version(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    ok(db, "init")
    doc = json.loads(catalog.bundled_catalog_text())
    doc["version"] = 7
    path = tmp_path / "v7.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert "7" in ok(db, "catalog", "load", str(path))
    from server_stub.db import make_engine

    with make_engine(db).connect() as conn:
        assert catalog.latest_version(conn) == 7
        assert catalog.get_version(conn, 1) is not None


def test_default_database_is_under_server_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        kiosk_server_argv(None, "init"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "server-data" / "server.db").is_file()


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["reconcile", "--help"]])
def test_help(args: list[str], tmp_path: Path) -> None:
    assert "Usage" in ok(f"sqlite:///{tmp_path / 's.db'}", *args)


def _catalog_file(tmp_path: Path, name: str, **change: Any) -> str:
    doc = json.loads(catalog.bundled_catalog_text())
    doc.update(change)
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_catalog_load_refuses_empty_or_dropping_catalogs_and_prints_the_diff(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    ok(db, "init")
    assert "no services" in _bad(
        db, "catalog", "load", _catalog_file(tmp_path, "empty.json", version=9, services=[])
    )
    services = json.loads(catalog.bundled_catalog_text())["services"]
    kept = [s for s in services if s["code"] != "AEPS"]
    kept[0] = {**kept[0], "fee_paise": kept[0]["fee_paise"] + 500}
    dropping = _catalog_file(tmp_path, "drop.json", version=2, services=kept)
    refused = _bad(db, "catalog", "load", dropping)
    assert "AEPS" in refused and "--allow-removal" in refused
    from server_stub.db import make_engine

    with make_engine(db).connect() as conn:
        assert catalog.latest_version(conn) == 1  # nothing written
    diff = json.loads(ok(db, "catalog", "load", dropping, "--allow-removal", "--json"))
    assert (
        diff["version"] == 2 and diff["previous"] == 1 and diff["removed"] == ["AEPS"] and diff["added"] == []
    )
    code, fee = kept[0]["code"], kept[0]["fee_paise"]
    assert diff["fee_changed"] == {code: {"from_paise": fee - 500, "to_paise": fee}}
    added = [*kept, {**services[0], "code": "NEW_SVC"}]
    text = ok(db, "catalog", "load", _catalog_file(tmp_path, "v3.json", version=3, services=added))
    assert "added:       NEW_SVC" in text and "removed:     -" in text


def test_admin_lists_rotate_and_reinstate(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    ok(db, "init")
    a = json.loads(ok(db, "lsp", "add", "--name", "Alpha", "--json"))
    assert "already exists" in _bad(db, "lsp", "add", "--name", "  alpha ")  # names are unique
    b = json.loads(ok(db, "lsp", "add", "--name", "Beta", "--json"))
    k1 = json.loads(ok(db, "kiosk", "add", "--lsp", a["lsp_id"], "--name", "Shop A", "--json"))
    ok(db, "kiosk", "add", "--lsp", b["lsp_id"], "--name", "Shop B")
    lsps = json.loads(ok(db, "lsp", "list", "--json"))
    assert [(x["lsp_id"], x["name"], x["kiosks"]) for x in lsps] == [
        (a["lsp_id"], "Alpha", 1),
        (b["lsp_id"], "Beta", 1),
    ]
    assert "Alpha" in ok(db, "lsp", "list")
    mine = json.loads(ok(db, "kiosk", "list", "--lsp", a["lsp_id"], "--json"))
    assert [k["kiosk_code"] for k in mine] == [k1["kiosk_code"]] and mine[0]["enrolled_at"] is None
    assert len(json.loads(ok(db, "kiosk", "list", "--json"))) == 2
    rotated = json.loads(ok(db, "lsp", "rotate-key", a["lsp_id"], "--json"))
    assert rotated["lsp_id"] == a["lsp_id"] and rotated["api_key"] != a["api_key"]
    from server_stub.auth import authenticate_lsp
    from server_stub.db import make_engine
    from server_stub.errors import Unauthorized

    engine = make_engine(db)
    with engine.connect() as conn:
        assert authenticate_lsp(conn, f"Bearer {rotated['api_key']}") == a["lsp_id"]
        with pytest.raises(Unauthorized):
            authenticate_lsp(conn, f"Bearer {a['api_key']}")  # the old key stops working
    _enroll_one(engine, k1["kiosk_code"])
    devices = json.loads(ok(db, "device", "list", "--json"))
    assert [(d["kiosk_code"], d["lsp_id"], d["revoked_at"]) for d in devices] == [
        (k1["kiosk_code"], a["lsp_id"], None)
    ]
    assert json.loads(ok(db, "device", "revoke", k1["kiosk_code"], "--json")) == {
        "revoked": [devices[0]["device_id"]]
    }
    assert json.loads(ok(db, "device", "list", "--lsp", a["lsp_id"], "--json"))[0]["revoked_at"] is not None
    back = json.loads(ok(db, "device", "reinstate", devices[0]["device_id"], "--json"))
    assert back == {"reinstated": [devices[0]["device_id"]]}
    assert (
        json.loads(ok(db, "device", "list", "--kiosk", k1["kiosk_code"], "--json"))[0]["revoked_at"] is None
    )
    assert json.loads(ok(db, "device", "list", "--lsp", b["lsp_id"], "--json")) == []
    _bad(db, "device", "reinstate", "nobody")
    _bad(db, "lsp", "rotate-key", "LSP9999")
    engine.dispose()


def _enroll_one(engine: Any, kiosk_code: str) -> None:
    """A device row for the kiosk, as enrollment writes it."""
    import uuid

    from server_stub.db import devices

    with engine.begin() as conn:
        device_id = str(uuid.uuid4())
        conn.execute(
            devices.insert().values(
                device_id=device_id,
                kiosk_code=kiosk_code,
                public_key="A" * 43 + "=",
                enrolled_at=1,
                head_seq=0,
                head_hash="0" * 64,
            )
        )
