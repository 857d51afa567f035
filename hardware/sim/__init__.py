"""Simulators that speak the real protocols over real transports (pty, TCP, HTTP).

Names are imported on first use (PEP 562), so the CLI can read :mod:`hardware.sim.modes`
without loading Pillow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "EscposDecoder": "hardware.sim.escpos",
    "Paper": "hardware.sim.escpos",
    "PrinterSim": "hardware.sim.printer",
    "R30xSim": "hardware.sim.r30x",
    "RDServiceSim": "hardware.sim.rdservice",
}

if TYPE_CHECKING:
    from hardware.sim.escpos import EscposDecoder, Paper
    from hardware.sim.printer import PrinterSim
    from hardware.sim.r30x import R30xSim
    from hardware.sim.rdservice import RDServiceSim


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'hardware.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


__all__ = ["EscposDecoder", "Paper", "PrinterSim", "R30xSim", "RDServiceSim"]
