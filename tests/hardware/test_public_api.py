from __future__ import annotations

import ast
from pathlib import Path

import hardware
import hardware.fingerprint
import hardware.printer
import hardware.sim


def test_all_names_exist() -> None:
    for module in (hardware, hardware.printer, hardware.fingerprint, hardware.sim):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_public_surface_is_small() -> None:
    assert set(hardware.__all__) >= {"open_printer", "ReceiptData", "build_receipt", "verify_receipt_qr"}
    assert len(hardware.__all__) < 25


def test_hardware_never_imports_agent() -> None:
    root = Path(hardware.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "agent" or n.startswith("agent.") for n in names), path


def test_fonts_and_licence_are_bundled() -> None:
    fonts = Path(hardware.__file__).parent / "fonts"
    assert (fonts / "NotoSansDevanagari-Regular.ttf").stat().st_size > 100_000
    assert "SIL OPEN FONT LICENSE" in (fonts / "OFL.txt").read_text(encoding="utf-8")
