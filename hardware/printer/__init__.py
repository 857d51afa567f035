"""Receipt printers: one interface (:mod:`.base`), one module per backend."""

from __future__ import annotations

from hardware.printer.base import Printer, PrinterStatus
from hardware.printer.null import NullPrinter
from hardware.printer.recording import RecordingPrinter
from hardware.printer.serialport import SerialPrinter


def open_printer(
    url: str | None, *, width_dots: int = 576, usb_id: str | None = None, **options: object
) -> Printer:
    """The printer for ``[printer] url``: ``"none"`` (or empty) gives a :class:`NullPrinter`.

    The port is opened lazily on the first status/print, so a missing printer
    does not stop the agent from starting.
    """
    if url is None or url.strip().lower() in ("", "none"):
        if not usb_id:
            return NullPrinter(width_dots=width_dots)
        url = ""
    return SerialPrinter(url, width_dots=width_dots, usb_id=usb_id, **options)  # type: ignore[arg-type]


__all__ = ["NullPrinter", "Printer", "PrinterStatus", "RecordingPrinter", "SerialPrinter", "open_printer"]
