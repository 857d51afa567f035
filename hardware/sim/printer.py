"""Thermal printer simulator: ESC/POS over TCP (like port 9100) or a pty.

``fail_mode`` (settable while running):

* ``"paper_out"`` -- DLE EOT says paper end (and offline); printing is refused (discarded)
* ``"paper_low"`` -- DLE EOT says paper near end; printing works
* ``"offline"`` -- DLE EOT says offline (cover open); printing is refused
* ``"no_status"`` -- never answers DLE EOT (like many cheap printers)
* ``"garbage"`` -- answers DLE EOT with bytes that are not status bytes
* ``"slow"`` -- answers DLE EOT after ``delay`` seconds
* ``"unplug"`` -- vanish after ``unplug_after`` more bytes; :meth:`replug` brings it back

The decoded output is in :attr:`PrinterSim.paper` (text, QR payloads, rasters, cuts)
and can be rendered with ``sim.paper.save_png(path)``.
"""

from __future__ import annotations

import threading

from hardware.sim._stream import StreamSim, Transport
from hardware.sim.escpos import EscposDecoder, Paper

STATUS_OK = 0x12


class PrinterSim(StreamSim):
    name = "printer"

    def __init__(
        self, *, transport: Transport = "tcp", port: int = 0, width_dots: int = 576, delay: float = 2.0
    ):
        super().__init__(transport=transport, port=port)
        self.width_dots = width_dots
        self.delay = delay
        self.decoder = EscposDecoder(width_dots=width_dots, status=self._status, accepting=self._accepting)
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
