"""Thermal printer simulator: ESC/POS over TCP (like port 9100) or a pty.

It answers as an Epson-compatible printer: ``DLE EOT n`` (real-time status, even
while offline), ``GS r 1`` / ``GS r 2`` (paper sensor, drawer), ``GS I n`` (printer
ID: model, type, ROM version; ``n = 65..69`` the ``_ ... NUL`` information strings)
and ``GS a n`` (automatic status back: 4 status bytes at once, then whenever an
enabled status changes).  The ordinary commands (``GS r``, ``GS I``) are not
executed while the printer is offline (paper out, cover open), as on Epson's.

``fail_mode`` (settable while running; ``hardware.sim.modes.PRINTER_FAIL_MODES`` is the list ``--help`` and
the README show):

* ``"paper_out"`` -- DLE EOT says paper end (and offline); printing is refused (discarded)
* ``"paper_low"`` -- DLE EOT says paper near end; printing works
* ``"offline"`` -- DLE EOT says offline (cover open); printing is refused
* ``"busy"`` -- the printer stops reading its line (receive buffer full, another job
  printing): no status reply, the client's writes back up; when the mode is cleared
  it takes everything that waited and prints it
* ``"no_status"`` -- never answers DLE EOT (like many cheap printers)
* ``"garbage"`` -- answers DLE EOT with bytes that are not status bytes
* ``"slow"`` -- answers DLE EOT after ``delay`` seconds
* ``"unplug"`` -- vanish after ``unplug_after`` more bytes (mid-job); it comes back by
  itself after ``replug_after`` seconds if that is set, or on :meth:`replug`

The decoded output is in :attr:`PrinterSim.paper` (text, QR payloads, barcodes,
rasters, cuts) and can be rendered with ``sim.paper.save_png(path)``.
"""

from __future__ import annotations

import threading

from hardware.sim._stream import StreamSim, Transport
from hardware.sim.escpos import EscposDecoder, Paper

STATUS_OK = 0x12


MODEL_ID = 0x20  # GS I 1
TYPE_ID = 0x02  # GS I 2: autocutter fitted, no multi-byte characters
ROM_VERSION_ID = 0x21  # GS I 3
_INFO = {65: b"SIM 1.00", 66: b"KIOSK-AGENT", 67: b"SIM-THERMAL", 68: b"SIM00000001", 69: b"PC437"}


class PrinterSim(StreamSim):
    name = "printer"
    stall_modes = frozenset({"busy"})

    def __init__(
        self, *, transport: Transport = "tcp", port: int = 0, width_dots: int = 576, delay: float = 2.0
    ):
        super().__init__(transport=transport, port=port)
        self.width_dots = width_dots
        self.delay = delay
        self.decoder = EscposDecoder(
            width_dots=width_dots, status=self._status, answer=self._answer, accepting=self._accepting
        )
        #: the GS a mask in force (0: automatic status back off)
        self.asb_mask = 0
        self._asb_last: bytes | None = None
        self._delay_event = threading.Event()

    @property
    def paper(self) -> Paper:
        return self.decoder.paper

    def stop(self) -> None:
        self._delay_event.set()
        super().stop()

    def wait_for_cuts(self, count: int, timeout: float = 5.0) -> None:
        self.wait_for(lambda: self.paper.cuts >= count, timeout=timeout)

    def handle(self, data: bytes) -> bytes:
        return self.decoder.feed(data)

    def _accepting(self) -> bool:
        return self.fail_mode not in ("paper_out", "offline")

    # --- DLE EOT ---------------------------------------------------------------------------------

    def _status(self, n: int) -> bytes | None:
        mode = self.fail_mode
        if mode == "no_status":
            return None
        if mode == "garbage":
            return b"\xff\x81"
        if mode == "slow" and self._delay_event.wait(self.delay):
            return None
        if n == 1:  # printer status: bit 3 = offline
            return bytes([STATUS_OK | (0x08 if mode in ("paper_out", "offline") else 0)])
        if n == 2:  # offline cause: bit 2 cover open, bit 5 stopped by paper end
            return bytes([STATUS_OK | (0x20 if mode == "paper_out" else 0x04 if mode == "offline" else 0)])
        if n == 3:  # error cause
            return bytes([STATUS_OK])
        if n == 4:  # paper sensor: bits 2-3 near end, bits 5-6 end
            return bytes([STATUS_OK | (0x60 if mode == "paper_out" else 0x0C if mode == "paper_low" else 0)])
        return None

    # --- GS r / GS I / GS a ----------------------------------------------------------------------

    def _answer(self, command: str, n: int) -> bytes | None:
        if command == "a":
            return self._enable_asb(n)
        if not self._accepting():
            return None  # offline: the receive buffer is not processed
        if command == "r":
            return self._transmit_status(n)
        return self._printer_id(n)

    def _transmit_status(self, n: int) -> bytes | None:
        if n in (1, 49):  # paper sensor: bits 0-1 near end, bits 2-3 paper end; bits 4 and 7 fixed 0
            return bytes([0x03 if self.fail_mode == "paper_low" else 0x00])
        if n in (2, 50):  # drawer kick-out connector pin 3 low
            return b"\x00"
        return None

    @staticmethod
    def _printer_id(n: int) -> bytes | None:
        ids = {1: MODEL_ID, 2: TYPE_ID, 3: ROM_VERSION_ID}
        key = n - 48 if n in (49, 50, 51) else n  # "1" and 1 mean the same
        if key in ids:
            return bytes([ids[key]])
        if n in _INFO:  # printer information B: header, text, NUL
            return b"_" + _INFO[n] + b"\x00"
        return None

    def asb_status(self) -> bytes:
        """The 4 automatic-status-back bytes for the current state (Epson's layout)."""
        mode = self.fail_mode
        first = 0x10  # bit 4 fixed on
        if mode in ("paper_out", "offline"):
            first |= 0x08  # offline
        if mode == "offline":
            first |= 0x20  # cover open
        paper = 0x0C if mode == "paper_out" else 0x03 if mode == "paper_low" else 0x00
        return bytes([first, 0x00, paper, 0x00])

    def _enable_asb(self, n: int) -> bytes | None:
        with self._lock:
            self.asb_mask = n & 0x0F
            self._asb_last = self.asb_status() if self.asb_mask else None
            return self._asb_last

    def on_fail_mode(self, old: str | None, new: str | None) -> None:
        if not self.asb_mask or self._asb_last is None:
            return
        now = self.asb_status()
        watched = [(0, 0x04)] if self.asb_mask & 1 else []  # drawer
        watched += [(0, 0x28)] if self.asb_mask & 2 else []  # online/offline, cover
        watched += [(1, 0x6C)] if self.asb_mask & 4 else []  # errors
        watched += [(2, 0x0F)] if self.asb_mask & 8 else []  # paper sensors
        if any((now[i] ^ self._asb_last[i]) & bits for i, bits in watched):
            self._asb_last = now
            self.push(now)
