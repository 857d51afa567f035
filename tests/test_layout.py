"""The small public surface of each package, and the one-way imports of DESIGN section 2."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "package",
    [
        "agent",
        "sync",
        "sync.wire",
        "hardware",
        "server_stub",
        "server_stub.ingest",
        "server_stub.routes",
        "agent.ledger",
        "agent.api",
        "agent.api.routes",
    ],
)
def test_every_public_name_resolves(package: str) -> None:
    mod = importlib.import_module(package)
    assert mod.__all__, f"{package} names no public surface"
    for name in mod.__all__:
        try:
            getattr(mod, name)
        except AttributeError:
            importlib.import_module(f"{package}.{name}")


def _modules_imported(package: str) -> set[str]:
    """Every module named by an import in ``package`` (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    found: set[str] = set()
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
    return found


def _imports(package: str) -> set[str]:
    return {m.split(".")[0] for m in _modules_imported(package)}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("agent", {"server_stub"}),  # the demo and agent/harness.py start the server as a process
        ("sync", {"agent", "server_stub", "hardware"}),
        ("hardware", {"agent", "server_stub", "sync"}),
        ("server_stub", {"agent", "hardware"}),
    ],
)
def test_imports_point_one_way(package: str, forbidden: set[str]) -> None:
    assert not (_imports(package) & forbidden)


def test_the_server_imports_only_the_shared_wire_code() -> None:
    """server_stub may use sync.wire (models, canonical encoding, signing, tokens), never the kiosk's
    client, engine or outbox."""
    kiosk_side = {
        m
        for m in _modules_imported("server_stub")
        if m.startswith("sync.") and not (m == "sync.wire" or m.startswith("sync.wire."))
    }
    assert not kiosk_side, f"server_stub imports the kiosk's sync client: {sorted(kiosk_side)}"


def test_the_wire_code_imports_nothing_of_the_kiosk_client() -> None:
    assert not {m for m in _modules_imported("sync.wire") if m.startswith("sync.") and ".wire" not in m}


# --- one home for SQL, short functions ----------------------------------------------------------

# A string that starts like a SQL statement. Upper case only: SQL here is written in capitals,
# and lower-case words such as "replace" or "with" are ordinary English in messages.
_SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|WITH|REPLACE|VACUUM|ATTACH|"
    r"DETACH|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b"
)
# The storage modules: the kiosk's ledger, and the server's table definitions and migrations.
_STORAGE = ("agent/ledger/", "server_stub/db.py", "server_stub/migrations/", "server_stub/store/")
_PRODUCT = ("agent", "sync", "hardware", "server_stub")


def _py_files(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def sql_outside_storage(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        rel = _rel(path)
        if rel.startswith(_STORAGE):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.match(node.value):
                found.append(f"{rel}:{node.lineno}: {node.value.strip()[:50]!r}")
    return found


def test_no_sql_text_outside_the_storage_modules() -> None:
    found = sql_outside_storage(_py_files(*_PRODUCT))
    assert not found, "SQL belongs in agent/ledger/ or the server's storage modules:\n" + "\n".join(found)


def test_the_sql_check_finds_a_statement(tmp_path: Path) -> None:
    probe = ROOT / "agent" / "_probe_sql_check.py"
    probe.write_text('Q = "SELECT seq FROM records"\nMSG = "replace the paper roll"\n', encoding="utf-8")
    try:
        assert [f.split(":")[0] for f in sql_outside_storage([probe])] == ["agent/_probe_sql_check.py"]
    finally:
        probe.unlink()


MAX_FUNCTION_LINES = 60


def long_functions(files: list[Path]) -> list[str]:
    """Functions longer than MAX_FUNCTION_LINES (from ``def`` to the last line; decorators apart)."""
    found = []
    for path in files:
        if "migrations" in path.parts or path.stem == "migrations":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{_rel(path)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_over_60_lines() -> None:
    found = long_functions(_py_files(*_PRODUCT, "bench", "tests"))
    assert not found, "split these into steps:\n" + "\n".join(found)
