"""ESC/POS printer on any pyserial URL: ``/dev/ttyUSB0``, ``COM3``, ``socket://host:9100``, ``loop://``.

The transport, timeouts, status and reconnects are ours:

* every job is preceded by a status check (paper out / offline refuse the job)
  and followed by one (a dropped connection or paper running out mid-job is
  reported, so the job stays pending and can be reprinted);
* ``DLE EOT`` with no reply within ``status_timeout`` means UNKNOWN -- never OK;
  in that case the job is sent anyway (many cheap printers never answer);
* after any port error the port is closed and the next call reopens it; with
  ``usb_id="VVVV:PPPP"`` the device is re-found by USB VID:PID through
  ``serial.tools.list_ports`` (its ``/dev/ttyUSBn`` or ``COMn`` may change on replug).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import serial
import serial.tools.list_ports

from hardware._serialio import PORT_ERRORS
from hardware.errors import PrinterUnavailable
from hardware.printer.base import (
    DLE_EOT,
    STATUS_PAPER,
    STATUS_PRINTER,
    Printer,
    PrinterStatus,
    decode_status,
    raise_for_status,
)

log = logging.getLogger(__name__)


def parse_usb_id(usb_id: str) -> tuple[int, int]:
    """``"0483:5743"`` -> (0x0483, 0x5743)."""
    try:
        vid, pid = (int(x, 16) for x in usb_id.split(":"))
    except ValueError:
        raise ValueError(f"USB id must look like 0483:5743, not {usb_id!r}") from None
    if not (0 <= vid <= 0xFFFF and 0 <= pid <= 0xFFFF):
        raise ValueError(f"USB id out of range: {usb_id!r}")
    return vid, pid


class SerialPrinter(Printer):
    def __init__(
        self,
        url: str,
        *,
        width_dots: int = 576,
        usb_id: str | None = None,
        baudrate: int = 19200,
        write_timeout: float = 10.0,
        status_timeout: float = 0.5,
        chunk_size: int = 4096,
        check_status: bool = True,
        serial_for_url: Callable[..., Any] = serial.serial_for_url,
        list_ports: Callable[[], Iterable[Any]] = serial.tools.list_ports.comports,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if width_dots not in (384, 576):
            raise ValueError("width_dots must be 384 (58 mm) or 576 (80 mm)")
        self.url = url
        self.width_dots = width_dots
        self.usb_id = usb_id
        self._usb = parse_usb_id(usb_id) if usb_id else None
        self.baudrate = baudrate
        self.write_timeout = write_timeout
        self.status_timeout = status_timeout
        self.chunk_size = chunk_size
        self.check_status = check_status
        self._serial_for_url = serial_for_url
        self._list_ports = list_ports
        self._clock = clock
        self._port: Any = None
        self._lock = threading.RLock()
        self.device: str | None = None  # what we actually opened

    def __repr__(self) -> str:
        return f"SerialPrinter(url={self.url!r}, usb_id={self.usb_id!r}, width_dots={self.width_dots})"

    # --- connection ------------------------------------------------------------------------------

    def _resolve(self) -> str:
        if self._usb is not None:
            vid, pid = self._usb
            for info in self._list_ports():
                if getattr(info, "vid", None) == vid and getattr(info, "pid", None) == pid:
                    return str(info.device)
            if not self.url:
                raise PrinterUnavailable(
                    f"No printer with USB id {self.usb_id} is connected. Check the USB cable and power."
                )
        return self.url

    def open(self) -> None:
        with self._lock:
            if self._port is not None:
                return
            device = self._resolve()
            try:
                self._port = self._serial_for_url(
                    device, baudrate=self.baudrate, timeout=0.05, write_timeout=self.write_timeout
                )
            except PORT_ERRORS as exc:
                raise PrinterUnavailable(
                    f"Cannot open the printer at {device} ({type(exc).__name__}). "
                    "Check that it is switched on and connected, then retry."
                ) from exc
            self.device = device
            log.info("printer connected on %s", device)

    def close(self) -> None:
        with self._lock:
            port, self._port = self._port, None
            if port is not None:
                try:
                    port.close()
                except PORT_ERRORS:
                    pass

    # --- status ----------------------------------------------------------------------------------

    def _read_byte(self, deadline: float) -> int | None:
        while True:
            got = self._port.read(1)
            if got:
                return int(got[0])
            if self._clock() >= deadline:
                return None

    def _query(self, n: int) -> int | None:
        self._port.write(DLE_EOT + bytes([n]))
        self._port.flush()
        return self._read_byte(self._clock() + self.status_timeout)

    def status(self) -> PrinterStatus:
        with self._lock:
            try:
                self.open()
            except PrinterUnavailable:
                return PrinterStatus.DISCONNECTED
            try:
                self._port.reset_input_buffer()
                printer_byte = self._query(STATUS_PRINTER)
                if printer_byte is None:
                    return PrinterStatus.UNKNOWN
                paper_byte = self._query(STATUS_PAPER)
            except PORT_ERRORS:
                log.warning("printer connection lost during a status query")
                self.close()
                return PrinterStatus.DISCONNECTED
            return decode_status(printer_byte, paper_byte)

    # --- printing --------------------------------------------------------------------------------

    def print_bytes(self, job: bytes) -> PrinterStatus:
        with self._lock:
            self.open()
            if self.check_status:
                raise_for_status(self.status())
            try:
                for start in range(0, len(job), self.chunk_size):
                    self._port.write(job[start : start + self.chunk_size])
                self._port.flush()
            except PORT_ERRORS as exc:
                self.close()
                raise PrinterUnavailable(
                    "The printer connection dropped while printing; the receipt may be incomplete. "
                    "Check the cable and power, then reprint."
                ) from exc
            if not self.check_status:
                return PrinterStatus.UNKNOWN
            after = self.status()
            raise_for_status(after, during=True)
            return after
