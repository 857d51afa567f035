"""The server's keys at rest: in key files (0600, in a 0700 folder) or the environment, never in the
database; the database file and folder private; a database that kept its keys in a table has them
moved out; a start with the wrong or missing key files is refused."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from server_stub import keys
from server_stub.db import _alembic_config, make_engine
from sync.wire.fingerprint import key_fingerprint, server_fingerprint
from tests.server_stub.conftest import kiosk_server_argv, run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def db_files(db_path: Path) -> list[Path]:
    return [p for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")) if p.exists()]


def assert_not_in_files(files: list[Path], *secrets: bytes) -> None:
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"a private key is in {path.name}"


def test_init_keeps_keys_in_private_files_and_prints_their_fingerprints(tmp_path: Path) -> None:
    db_path = tmp_path / "srv" / "server.db"
    proc = run_cli(f"sqlite:///{db_path}", "init")
    assert proc.returncode == 0, proc.stderr
    folder = db_path.parent / "keys"
    source = keys.KeySource.at(folder, env={})
    loaded = keys.load_keys(source)
    prints = loaded.fingerprints()
    for name in ("sign", "seal", "server"):
        assert prints[name] in proc.stdout
    assert prints["sign"] == key_fingerprint(base64.b64decode(loaded.sign_public_b64))
    assert len(prints["server"].split()) == 16 and all(len(g) == 4 for g in prints["server"].split())
    assert mode(db_path.parent) == 0o700 and mode(folder) == 0o700
    assert all(mode(p) == 0o600 for p in db_files(db_path)), [oct(mode(p)) for p in db_files(db_path)]
    assert mode(source.path("sign")) == 0o600 and mode(source.path("seal")) == 0o600
    assert_not_in_files(db_files(db_path), keys.raw_private(loaded.sign), keys.raw_private(loaded.seal))
    again = run_cli(f"sqlite:///{db_path}", "init")
    assert again.returncode == 0 and keys.load_keys(source).fingerprint == loaded.fingerprint  # kept


def _legacy_database(db_url: str) -> tuple[bytes, bytes]:
    """A database at revision 0001, with its keys in the server_keys table as before."""
    engine = make_engine(db_url)
    sign, seal = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        table = sa.table(
            "server_keys", *(sa.column(c) for c in ("name", "private_raw", "public_b64", "created_at"))
        )
        for name, key in (("sign", sign), ("seal", seal)):
            row = {"private_raw": keys.raw_private(key), "public_b64": keys.public_b64(key)}
            conn.execute(table.insert().values(name=name, created_at=1, **row))
    engine.dispose()
    return keys.raw_private(sign), keys.raw_private(seal)


def test_keys_kept_in_the_database_are_moved_out(db_url: str, tmp_path: Path) -> None:
    sign_raw, seal_raw = _legacy_database(db_url)
    folder = tmp_path / "keys"
    proc = run_cli(db_url, "--keys-dir", str(folder), "init")
    assert proc.returncode == 0, proc.stderr
    moved = keys.load_keys(keys.KeySource.at(folder, env={}))
    assert (keys.raw_private(moved.sign), keys.raw_private(moved.seal)) == (sign_raw, seal_raw)
    assert moved.fingerprint in proc.stdout
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert "server_keys" not in sa.inspect(conn).get_table_names()
        publics = dict(conn.execute(sa.text("SELECT name, public_b64 FROM server_public_keys")).all())
    engine.dispose()
    assert publics == {"sign": moved.sign_public_b64, "seal": moved.seal_public_b64}
    if db_url.startswith("sqlite"):  # the file is rebuilt: no free page keeps a copy
        assert_not_in_files(db_files(Path(db_url.removeprefix("sqlite:///"))), sign_raw, seal_raw)


def _serve_refused(db_url: str, *extra: str) -> str:
    import subprocess

    argv = kiosk_server_argv(db_url, *extra, "serve", "--port", "0", "--log-level", "warning")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_a_start_with_wrong_or_missing_key_files_is_refused(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    assert run_cli(db_url, "init").returncode == 0
    folder = tmp_path / "keys"
    before = keys.load_keys(keys.KeySource.at(folder, env={})).fingerprint
    (folder / "signing.key").rename(tmp_path / "signing.key.bak")
    assert "restore the key files" in _serve_refused(db_url)  # never silently new keys
    keys.write_key_file(folder / "signing.key", Ed25519PrivateKey.generate())
    assert "is not this database's key" in _serve_refused(db_url)
    (tmp_path / "signing.key.bak").replace(folder / "signing.key")
    assert keys.load_keys(keys.KeySource.at(folder, env={})).fingerprint == before


def test_keys_from_the_environment_write_no_files(tmp_path: Path) -> None:
    sign, seal = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    env = {
        "KIOSK_SERVER_SIGNING_KEY": base64.b64encode(keys.raw_private(sign)).decode(),
        "KIOSK_SERVER_SEAL_KEY": base64.b64encode(keys.raw_private(seal)).decode(),
    }
    import subprocess

    argv = kiosk_server_argv(f"sqlite:///{tmp_path / 'server.db'}", "init")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    assert server_fingerprint(keys.public_b64(sign), keys.public_b64(seal)) in proc.stdout
    assert not (tmp_path / "keys" / "signing.key").exists() and not (tmp_path / "keys" / "seal.key").exists()
    bad = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "KIOSK_SERVER_SEAL_KEY": "x"},
    )
    assert bad.returncode == 2 and "KIOSK_SERVER_SEAL_KEY" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("loose", [0o755, 0o644])
def test_a_looser_key_file_is_tightened_when_read(tmp_path: Path, loose: int) -> None:
    folder = tmp_path / "keys"
    keys.write_key_file(folder / "signing.key", Ed25519PrivateKey.generate())
    keys.write_key_file(folder / "seal.key", X25519PrivateKey.generate())
    os.chmod(folder / "seal.key", loose)
    keys.load_keys(keys.KeySource.at(folder, env={}))
    assert mode(folder / "seal.key") == 0o600
