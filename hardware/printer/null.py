"""The printer used when ``[printer] url = "none"``: nothing is printed, and saying so is an error."""

from __future__ import annotations

from hardware.errors import PrinterDisabled
from hardware.printer.base import Printer, PrinterStatus


class NullPrinter(Printer):
    def __init__(self, *, width_dots: int = 576) -> None:
        self.url = "none"
        self.width_dots = width_dots

    def __repr__(self) -> str:
        return "NullPrinter()"

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def status(self) -> PrinterStatus:
        return PrinterStatus.DISABLED

    def print_bytes(self, job: bytes) -> PrinterStatus:
        raise PrinterDisabled('Printing is switched off ([printer] url = "none"); the receipt stays pending.')
