"""`kiosk-server user add|list` and `kiosk add --district` as real processes; the user then signs
in to a real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import sqlalchemy as sa

from server_stub.console.tables import audit_log, console_users
from tests.server_stub.conftest import kiosk_server_argv, run_cli

PASSWORD = "a long enough password"


def _cli(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kiosk_server_argv(db, *args), input=stdin, capture_output=True, text=True, timeout=120
    )


def test_user_add_stores_an_argon2_hash_and_is_audited(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert run_cli(db, "init").returncode == 0
    lsp = json.loads(run_cli(db, "lsp", "add", "--name", "Acme", "--json").stdout)["lsp_id"]
    added = _cli(
        db,
        "user",
        "add",
        "Asha",
        "--role",
        "lsp-admin",
        "--lsp",
        lsp,
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"username": "asha", "role": "lsp-admin", "lsp_id": lsp}
    prompted = _cli(db, "user", "add", "chief", "--role", "doitc-admin", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.returncode == 0 and "added chief (doitc-admin)" in prompted.stdout, prompted.stderr
    listed = json.loads(_cli(db, "user", "list", "--json").stdout)
    assert [(u["username"], u["role"], u["lsp_id"]) for u in listed] == [
        ("asha", "lsp-admin", lsp),
        ("chief", "doitc-admin", None),
    ]
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(sa.select(console_users.c.password_hash))]
        actions = [tuple(r) for r in conn.execute(sa.select(audit_log.c.action, audit_log.c.target))]
    engine.dispose()
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    assert actions == [("user_add", "asha"), ("user_add", "chief")]
    assert PASSWORD not in (tmp_path / "server.db").read_bytes().decode("latin-1")


def test_user_add_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert run_cli(db, "init").returncode == 0
    cases = [
        (["user", "add", "x y", "--role", "doitc-admin"], "a user name is"),
        (["user", "add", "ravi", "--role", "lsp-viewer"], "an LSP role needs --lsp ID"),
        (["user", "add", "ravi", "--role", "lsp-viewer", "--lsp", "LSP9999"], "no such LSP"),
        (["user", "add", "ravi", "--role", "doitc-admin", "--lsp", "LSP0001"], "doitc-admin takes none"),
        (["user", "add", "ravi", "--role", "root"], "Invalid value for '--role'"),
    ]
    for args, message in cases:
        proc = _cli(db, *args, "--password-stdin", stdin=PASSWORD + "\n")
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
    short = _cli(db, "user", "add", "ravi", "--role", "doitc-admin", "--password-stdin", stdin="short\n")
    assert (
        short.returncode == 2
        and "at least 12 characters" in short.stderr
        and "short" not in short.stderr.split("at least")[0][-10:]
    )
    assert (
        _cli(
            db, "user", "add", "ravi", "--role", "doitc-admin", "--password-stdin", stdin=PASSWORD
        ).returncode
        == 0
    )
    again = _cli(db, "user", "add", "RAVI", "--role", "doitc-admin", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_kiosk_add_takes_a_district(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert run_cli(db, "init").returncode == 0
    lsp = json.loads(run_cli(db, "lsp", "add", "--name", "Acme", "--json").stdout)["lsp_id"]
    ok = run_cli(db, "kiosk", "add", "--lsp", lsp, "--name", "Shop", "--district", "Jodhpur", "--json")
    assert ok.returncode == 0, ok.stderr
    listed = json.loads(run_cli(db, "kiosk", "list", "--json").stdout)
    assert [(k["kiosk_code"], k["district"]) for k in listed] == [
        (json.loads(ok.stdout)["kiosk_code"], "Jodhpur")
    ]
    bad = run_cli(db, "kiosk", "add", "--lsp", lsp, "--name", "Shop", "--district", " ")
    assert bad.returncode == 2 and "a district must be" in bad.stderr
