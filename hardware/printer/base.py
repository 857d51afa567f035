"""The printer interface, its status values and the DLE EOT status decoding."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import TYPE_CHECKING

from hardware._lifecycle import OpenClose
from hardware.errors import (
    HardwareError,
    PrinterDisabled,
    PrinterError,
    PrinterOffline,
    PrinterPaperOut,
    PrinterUnavailable,
)

if TYPE_CHECKING:
    from hardware.receipt import ReceiptData, Sign

DLE_EOT = b"\x10\x04"
STATUS_PRINTER = 1
STATUS_OFFLINE_CAUSE = 2
STATUS_ERROR_CAUSE = 3
STATUS_PAPER = 4


class PrinterStatus(StrEnum):
    OK = "ok"
    PAPER_LOW = "paper_low"
    PAPER_OUT = "paper_out"
    OFFLINE = "offline"  # cover open, feed button held, error state
    UNKNOWN = "unknown"  # the printer did not answer DLE EOT (many cheap printers never do)
    DISCONNECTED = "disconnected"  # the port could not be opened or dropped
    DISABLED = "disabled"  # printing switched off in the configuration


def valid_status_byte(b: int) -> bool:
    """Every DLE EOT reply has bits 1 and 4 set and bits 0 and 7 clear."""
    return b & 0x93 == 0x12


def decode_status(printer_byte: int | None, paper_byte: int | None) -> PrinterStatus:
    """Combine the replies to DLE EOT 1 and DLE EOT 4.  Missing or malformed means UNKNOWN."""
    if printer_byte is None or not valid_status_byte(printer_byte):
        return PrinterStatus.UNKNOWN
    paper_ok = paper_byte is not None and valid_status_byte(paper_byte)
    if paper_ok and paper_byte is not None and paper_byte & 0x60:
        return PrinterStatus.PAPER_OUT
    if printer_byte & 0x08:
        return PrinterStatus.OFFLINE
    if not paper_ok:
        return PrinterStatus.UNKNOWN
    if paper_byte is not None and paper_byte & 0x0C:
        return PrinterStatus.PAPER_LOW
    return PrinterStatus.OK


def raise_for_status(status: PrinterStatus, *, during: bool = False) -> None:
    """Turn a blocking status into our error (UNKNOWN, OK and PAPER_LOW do not block)."""
    when = "while printing" if during else "before printing"
    if status is PrinterStatus.PAPER_OUT:
        raise PrinterPaperOut(f"The printer is out of paper ({when}). Load a new roll, then reprint.")
    if status is PrinterStatus.OFFLINE:
        raise PrinterOffline(
            f"The printer is offline ({when}): close the cover and check for a paper jam, then reprint."
        )
    if status is PrinterStatus.DISCONNECTED:
        raise PrinterUnavailable(
            f"The printer connection dropped ({when}); the receipt may be incomplete. "
            "Check the cable and power, then reprint."
        )
    if status is PrinterStatus.DISABLED:
        raise PrinterDisabled('Printing is switched off ([printer] url = "none").')


class Printer(OpenClose, ABC):
    """A receipt printer.  ``print_bytes`` raises our errors; ``status`` never raises."""

    url: str
    width_dots: int

    @abstractmethod
    def open(self) -> None:
        """Connect; raises :class:`PrinterUnavailable`."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect; safe to call twice."""

    @abstractmethod
    def status(self) -> PrinterStatus:
        """Ask the printer (DLE EOT).  No answer is UNKNOWN, never OK."""

    @abstractmethod
    def print_bytes(self, job: bytes) -> PrinterStatus:
        """Send one complete ESC/POS job; returns the status read back after it."""

    def print_receipt(self, data: ReceiptData, *, sign: Sign) -> PrinterStatus:
        """Build the receipt for this printer's paper width and print it."""
        from hardware.receipt import build_receipt

        return self.print_bytes(build_receipt(data, self.width_dots, sign=sign))


__all__ = [
    "HardwareError",
    "Printer",
    "PrinterError",
    "PrinterStatus",
    "decode_status",
    "raise_for_status",
]
