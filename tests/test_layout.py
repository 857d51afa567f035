"""The small public surface of each package, and the one-way imports of DESIGN section 2."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["agent", "sync", "hardware", "server_stub", "agent.ledger", "agent.api"])
def test_every_public_name_resolves(package: str) -> None:
    mod = importlib.import_module(package)
    assert mod.__all__, f"{package} names no public surface"
    for name in mod.__all__:
        try:
            getattr(mod, name)
        except AttributeError:
            importlib.import_module(f"{package}.{name}")


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("sync", {"agent", "server_stub", "hardware"}),
        ("hardware", {"agent", "server_stub", "sync"}),
        ("server_stub", {"agent", "hardware"}),
    ],
)
def test_imports_point_one_way(package: str, forbidden: set[str]) -> None:
    assert not (_imports(package) & forbidden)
