"""A printer that records what it was asked to print (like python-escpos's ``Dummy``).

For tests and tools that need a printer but no simulator: every job is kept in
``jobs`` (the ESC/POS bytes) and every receipt in ``receipts`` (its data), and
the printer can be told to fail the way real ones do::

    printer = RecordingPrinter()
    printer.fail("paper_out")      # the next jobs raise PrinterPaperOut, nothing is recorded
    printer.fail("unplugged")      # PrinterUnavailable, status DISCONNECTED
    printer.fail("offline")        # PrinterOffline (cover open)
    printer.fail("unknown")        # status UNKNOWN: jobs still print (many printers never answer)
    printer.recover()              # OK again
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from hardware.errors import PrinterUnavailable
from hardware.printer.base import Printer, PrinterStatus, raise_for_status

if TYPE_CHECKING:
    from hardware.receipt import ReceiptData, Sign

FailMode = Literal["paper_out", "unplugged", "offline", "unknown", "paper_low"]

_STATUS_OF: dict[str, PrinterStatus] = {
    "paper_out": PrinterStatus.PAPER_OUT,
    "unplugged": PrinterStatus.DISCONNECTED,
    "offline": PrinterStatus.OFFLINE,
    "unknown": PrinterStatus.UNKNOWN,
    "paper_low": PrinterStatus.PAPER_LOW,
}


class RecordingPrinter(Printer):
    """Keeps every job; ``build=False`` records receipts without rendering their bytes (faster)."""

    def __init__(self, *, width_dots: int = 576, build: bool = True, url: str = "recording://") -> None:
        if width_dots not in (384, 576):
            raise ValueError("width_dots must be 384 (58 mm) or 576 (80 mm)")
        self.url = url
        self.width_dots = width_dots
        self.build = build
        self.jobs: list[bytes] = []
        self.receipts: list[ReceiptData] = []
        self.refused: list[str] = []  # the message of every job that failed
        self.opens = 0
        self.is_open = False
        self._status = PrinterStatus.OK

    def __repr__(self) -> str:
        return f"RecordingPrinter(status={self._status.value}, jobs={len(self.jobs)})"

    # --- what the test controls ------------------------------------------------------------------

    def fail(self, mode: FailMode) -> None:
        """Make the printer report ``mode`` (and refuse jobs, except for unknown/paper_low)."""
        self._status = _STATUS_OF[mode]

    def recover(self) -> None:
        self._status = PrinterStatus.OK

    # --- the Printer interface -------------------------------------------------------------------

    def open(self) -> None:
        if self._status is PrinterStatus.DISCONNECTED:
            raise PrinterUnavailable(
                f"Cannot open the printer at {self.url}. "
                "Check that it is switched on and connected, then retry."
            )
        if not self.is_open:
            self.opens += 1
            self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def status(self) -> PrinterStatus:
        return self._status

    def _check(self) -> None:
        try:
            self.open()
            raise_for_status(self._status)
        except PrinterUnavailable as exc:
            self.is_open = False
            self.refused.append(str(exc))
            raise
        except Exception as exc:
            self.refused.append(str(exc))
            raise

    def print_bytes(self, job: bytes) -> PrinterStatus:
        self._check()
        self.jobs.append(bytes(job))
        return self._status

    def print_receipt(self, data: ReceiptData, *, sign: Sign) -> PrinterStatus:
        self._check()
        self.receipts.append(data)
        if self.build:
            from hardware.receipt import build_receipt

            self.jobs.append(build_receipt(data, self.width_dots, sign=sign))
        return self._status


__all__ = ["FailMode", "RecordingPrinter"]
