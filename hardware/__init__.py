"""Kiosk hardware: receipt printer, fingerprint devices, and simulators for both.

The agent imports only what is listed in ``__all__``; this package never imports ``agent``.
"""

from __future__ import annotations

from hardware import errors
from hardware.errors import HardwareError, PermanentHardwareError, TransientHardwareError
from hardware.fingerprint import (
    CaptureDevice,
    CaptureResult,
    FingerprintSensor,
    PidOptions,
    R30xSensor,
    RDServiceClient,
    open_fingerprint,
)
from hardware.printer import Printer, PrinterStatus, open_printer
from hardware.receipt import ReceiptData, build_receipt, receipt_qr_text, render_png, verify_receipt_qr

__all__ = [
    "CaptureDevice",
    "CaptureResult",
    "FingerprintSensor",
    "HardwareError",
    "PermanentHardwareError",
    "PidOptions",
    "Printer",
    "PrinterStatus",
    "R30xSensor",
    "RDServiceClient",
    "ReceiptData",
    "TransientHardwareError",
    "build_receipt",
    "errors",
    "open_fingerprint",
    "open_printer",
    "receipt_qr_text",
    "render_png",
    "verify_receipt_qr",
]
