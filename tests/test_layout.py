"""The small public surface of each package, and the one-way imports of DESIGN section 2."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "package", ["agent", "sync", "sync.wire", "hardware", "server_stub", "agent.ledger", "agent.api"]
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
