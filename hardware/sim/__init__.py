"""Simulators that speak the real protocols over real transports (pty, TCP, HTTP)."""

from __future__ import annotations

from hardware.sim.escpos import EscposDecoder, Paper
from hardware.sim.printer import PrinterSim
from hardware.sim.r30x import R30xSim
from hardware.sim.rdservice import RDServiceSim

__all__ = ["EscposDecoder", "Paper", "PrinterSim", "R30xSim", "RDServiceSim"]
