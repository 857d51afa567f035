"""Kiosk hardware: receipt printer, fingerprint devices, and simulators for both.

The agent imports only what is listed in ``__all__``; this package never imports ``agent``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use (PEP 562): `from hardware.errors import ...` in the agent's
# long-running process must not pull in Pillow, python-escpos and qrcode (~10 MB of RSS)
# before a receipt is ever printed.
_WHERE = {
    "errors": "hardware.errors",
    "HardwareError": "hardware.errors",
    "PermanentHardwareError": "hardware.errors",
    "RDServiceError": "hardware.errors",
    "TransientHardwareError": "hardware.errors",
    "CaptureDevice": "hardware.fingerprint",
    "CaptureResult": "hardware.fingerprint",
    "FingerprintSensor": "hardware.fingerprint",
    "PidOptions": "hardware.fingerprint",
    "R30xSensor": "hardware.fingerprint",
    "RDServiceClient": "hardware.fingerprint",
    "open_fingerprint": "hardware.fingerprint",
    "Printer": "hardware.printer",
    "PrinterStatus": "hardware.printer",
    "RecordingPrinter": "hardware.printer",
    "open_printer": "hardware.printer",
    "format_rupees": "hardware.rupees",
    "ReceiptData": "hardware.receipt",
    "build_receipt": "hardware.receipt",
    "receipt_qr_text": "hardware.receipt",
    "render_png": "hardware.receipt",
    "verify_receipt_qr": "hardware.receipt",
}

if TYPE_CHECKING:
    from hardware import errors
    from hardware.errors import HardwareError, PermanentHardwareError, RDServiceError, TransientHardwareError
    from hardware.fingerprint import (
        CaptureDevice,
        CaptureResult,
        FingerprintSensor,
        PidOptions,
        R30xSensor,
        RDServiceClient,
        open_fingerprint,
    )
    from hardware.printer import Printer, PrinterStatus, RecordingPrinter, open_printer
    from hardware.receipt import ReceiptData, build_receipt, receipt_qr_text, render_png, verify_receipt_qr
    from hardware.rupees import format_rupees


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'hardware' has no attribute {name!r}")
    module = importlib.import_module(where)
    value = module if name == "errors" else getattr(module, name)
    globals()[name] = value
    return value


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
    "RDServiceError",
    "ReceiptData",
    "RecordingPrinter",
    "TransientHardwareError",
    "build_receipt",
    "errors",
    "format_rupees",
    "open_fingerprint",
    "open_printer",
    "receipt_qr_text",
    "render_png",
    "verify_receipt_qr",
]
