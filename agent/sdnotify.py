"""systemd's notify protocol (sd_notify) without a dependency, for ``run`` under ``Type=notify``.

``notify("READY=1")`` once serving, ``notify("WATCHDOG=1")`` at least every
``watchdog_interval()/2`` seconds, ``notify("STOPPING=1")`` on shutdown. Outside
systemd (no ``NOTIFY_SOCKET``) every call is a no-op returning False.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    addr = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    family = getattr(socket, "AF_UNIX", None)
    if not addr or family is None or not (addr.startswith("/") or addr.startswith("@")):
        return False
    target = "\0" + addr[1:] if addr.startswith("@") else addr
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds systemd waits for a WATCHDOG=1 (``WatchdogSec``), or None if no watchdog is set for us."""
    e = os.environ if env is None else env
    usec = e.get("WATCHDOG_USEC", "")
    pid = e.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


__all__ = ["notify", "watchdog_interval"]
