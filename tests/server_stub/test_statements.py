"""Signed monthly commission statements: a simulated month's kiosks that synced late, missed
heartbeats or forked have their commission held for the right reason; the file verifies with the
server's public key (files, the server's endpoint, the key files), is issued once and never
changes, and any change to it fails verification."""

from __future__ import annotations

import copy
import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from server_stub.keys import ServerKeys
from server_stub.statements import BadStatement, issue, load_public_key, sign_statement, verify
from sync.wire.canonical import canonical_json
from tests.server_stub.conftest import Harness, run_cli
from tests.server_stub.month_sim import COMMISSION_PER_SALE, DAYS, MONTH, Month, simulate

PER_KIOSK = DAYS * COMMISSION_PER_SALE


def _keys_args(h: Harness) -> list[str]:
    return ["--keys-dir", str(h.config.keys_path())]


def _issue(h: Harness) -> tuple[Month, bytes]:
    m = simulate(h)
    keys = _server_keys(h)
    issued = issue(h.engine, m.lsp.lsp_id, MONTH, h.config, keys, h.now_ms())
    assert issued.created
    return m, issued.document


def _server_keys(h: Harness) -> ServerKeys:
    from server_stub.keys import KeySource, load_keys

    return load_keys(KeySource.at(h.config.keys_path()))


def test_commission_is_held_for_the_rule_each_kiosk_broke(server: Harness) -> None:
    m, document = _issue(server)
    doc = verify(document, _server_keys(server).sign.public_key())
    by_code = {k["kiosk_code"]: k for k in doc["kiosks"]}
    assert set(by_code) == {m.kiosks[n].kiosk_code for n in ("good", "late", "silent", "forked")}
    rows = {name: by_code[m.kiosks[name].kiosk_code] for name in ("good", "late", "silent", "forked")}
    for name, rule in (("good", None), ("late", "sync"), ("silent", "heartbeat"), ("forked", "fork")):
        row = rows[name]
        assert row["earned_paise"] == PER_KIOSK
        assert [b["rule"] for b in row["breaches"]] == ([rule] if rule else [])
        assert row["held_paise"] == (PER_KIOSK if rule else 0)
        assert row["payable_paise"] == row["earned_paise"] - row["held_paise"]
    assert doc["totals"] == {
        "earned_paise": 4 * PER_KIOSK,
        "held_paise": 3 * PER_KIOSK,
        "payable_paise": PER_KIOSK,
    }
    assert doc["sla"] == {
        "sync_hours": 24,
        "max_late_syncs": 0,
        "heartbeat_days": 25,
        "rules": ["sync", "heartbeat", "fork"],
    }
    assert rows["late"]["breaches"][0]["evidence"]["late_syncs"] == 2


def test_issued_once_downloaded_as_issued_and_only_by_its_lsp(server: Harness) -> None:
    m, document = _issue(server)
    again = issue(
        server.engine,
        m.lsp.lsp_id,
        MONTH,
        server.config.replace(sla_rules="fork"),
        _server_keys(server),
        server.now_ms() + 86_400_000,
    )
    assert not again.created and again.document == document  # immutable: same bytes, other rules or not
    resp = server.lsp_get(m.lsp.api_key, f"/v1/statements/{MONTH}")
    assert resp.status_code == 200 and resp.content == document
    assert "attachment" in resp.headers["content-disposition"]
    listed = server.lsp_get(m.lsp.api_key, "/v1/statements").json()
    assert [s["month"] for s in listed["statements"]] == [MONTH]
    other = server.lsp_get(m.other.api_key, f"/v1/statements/{MONTH}")
    assert other.status_code == 404 and other.json()["error"] == "no_statement"
    assert server.lsp_get(m.other.api_key, "/v1/statements").json()["statements"] == []
    assert server.lsp_get(m.lsp.api_key, "/v1/statements/2026-13").status_code == 422
    assert server.session.get(server.url + f"/v1/statements/{MONTH}", timeout=30).status_code == 401


def test_verify_from_the_cli(server: Harness, tmp_path: Path) -> None:
    m, document = _issue(server)
    path = tmp_path / "statement.json"
    path.write_bytes(document)
    local = run_cli(server.db_url, *_keys_args(server), "statement", "verify", str(path))
    assert local.returncode == 0, local.stderr
    assert local.stdout.startswith(f"valid: {m.lsp.lsp_id} {MONTH}, payable Rs {PER_KIOSK / 100:.2f}")
    key = run_cli(server.db_url, *_keys_args(server), "statement", "public-key")
    key_file = tmp_path / "server.pub"
    key_file.write_text(key.stdout)
    by_file = run_cli(server.db_url, "statement", "verify", str(path), "--public-key", str(key_file))
    by_url = run_cli(server.db_url, "statement", "verify", str(path), "--server", server.url)
    assert by_file.returncode == 0 and by_url.returncode == 0, by_file.stderr + by_url.stderr
    both = run_cli(
        server.db_url, "statement", "verify", str(path), "--public-key", str(key_file), "--server", server.url
    )
    assert both.returncode == 2 and "not both" in both.stderr
    assert (
        server.session.get(server.url + "/v1/server-key", timeout=30).json()["sign_public_key"]
        == key.stdout.strip()
    )

    doc = json.loads(document)
    doc["statement"]["totals"]["payable_paise"] += 100
    path.write_text(json.dumps(doc, indent=2))
    changed = run_cli(server.db_url, "statement", "verify", str(path), "--public-key", str(key_file))
    assert changed.returncode == 2 and changed.stdout == ""
    assert changed.stderr.count("\n") == 1 and "changed after it was signed" in changed.stderr

    other_keys = ServerKeys.generate()
    path.write_bytes(sign_statement(doc["statement"], other_keys))  # re-signed by someone else
    forged = run_cli(server.db_url, "statement", "verify", str(path), "--public-key", str(key_file))
    assert forged.returncode == 2 and "another key" in forged.stderr
    path.write_text("not json {")
    junk = run_cli(server.db_url, "statement", "verify", str(path), "--public-key", str(key_file))
    assert junk.returncode == 2 and "not a statement file" in junk.stderr
    key_file.write_text("not a key")
    bad_key = run_cli(server.db_url, "statement", "verify", str(path), "--public-key", str(key_file))
    assert bad_key.returncode == 2 and "public key" in bad_key.stderr


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] + [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] + [path]
    return [path]


def _change(doc: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    if not path:
        changed["extra"] = value
        return changed
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent[last], dict):
        parent[last]["extra"] = value
    elif how == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value
    return changed


def test_any_change_to_the_file_fails_verification(server: Harness) -> None:
    _m, document = _issue(server)
    signed = json.loads(document)
    public = _server_keys(server).sign.public_key()
    paths = _leaves(signed)
    values = st.one_of(
        st.integers(), st.text(max_size=20), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)
    )

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(paths), st.sampled_from(["set", "delete", "add"]), values)
    def check(path: tuple[Any, ...], how: str, value: Any) -> None:
        changed = _change(signed, path, how, value)
        assume(changed != signed)
        with pytest.raises(BadStatement):
            verify(json.dumps(changed).encode(), public)

    check()
    assert (
        verify(json.dumps(signed, indent=2).encode(), public) == signed["statement"]
    )  # layout is not meaning


def _previous_month() -> str:
    now = datetime.now(ZoneInfo("Asia/Kolkata"))
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def test_build_from_the_cli_once_and_not_before_the_month_is_over(server: Harness, tmp_path: Path) -> None:
    def build(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(server.db_url, *_keys_args(server), "statement", "build", *args)

    lsp = server.lsp()
    last = _previous_month()
    out = tmp_path / "s.json"
    first = build("--lsp", lsp.lsp_id, "--month", last, "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert f"{lsp.lsp_id} {last}: issued" in first.stdout and "payable Rs 0.00" in first.stdout
    second = build("--lsp", lsp.lsp_id, "--month", last, "--json")
    assert second.returncode == 0 and second.stdout.encode() == out.read_bytes()
    shown = run_cli(server.db_url, "statement", "show", "--lsp", lsp.lsp_id, "--month", last)
    assert shown.returncode == 0 and "already issued" in shown.stdout
    early = build("--lsp", lsp.lsp_id, "--month", datetime.now(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m"))
    assert early.returncode == 2 and "not over yet" in early.stderr
    for bad in (["--lsp", "LSPX", "--month", last], ["--lsp", lsp.lsp_id, "--month", "2026-13"]):
        r = build(*bad)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    none = run_cli(server.db_url, "statement", "show", "--lsp", lsp.lsp_id, "--month", "2020-01")
    assert none.returncode == 2 and "no statement" in none.stderr
    other = server.lsp()
    every = build("--all", "--month", last)
    assert every.returncode == 0, every.stderr
    assert (
        f"{lsp.lsp_id} {last}: already issued" in every.stdout
        and f"{other.lsp_id} {last}: issued" in every.stdout
    )
    for usage in ([], ["--all", "--lsp", lsp.lsp_id], ["--all", "--json"]):
        r = build("--month", last, *usage)
        assert r.returncode == 2 and "--lsp ID" in r.stderr, r.stderr


def test_a_public_key_is_base64_or_pem() -> None:
    from cryptography.hazmat.primitives import serialization

    keys = ServerKeys.generate()
    pem = keys.sign.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key(pem.decode()) == keys.sign.public_key()
    assert load_public_key(keys.sign_public_b64 + "\n") == keys.sign.public_key()
    seal_pem = keys.seal.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(BadStatement):
        load_public_key(seal_pem.decode())  # an X25519 key signs nothing
    doc = {"kind": "kiosk-commission-statement-v1", "n": 1}
    assert verify(sign_statement(doc, keys), keys.sign.public_key()) == doc
    assert canonical_json(doc) in sign_statement(doc, keys)
