"""Shared bits for talking to pyserial ports."""

from __future__ import annotations

import serial

try:  # POSIX only; pyserial lets termios.error escape from tcflush on a vanished pty/USB port
    import termios

    _TERMIOS_ERRORS: tuple[type[BaseException], ...] = (termios.error,)
except ImportError:  # pragma: no cover - Windows
    _TERMIOS_ERRORS = ()

#: exceptions that mean "the port went away or is unusable"
PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, *_TERMIOS_ERRORS)
