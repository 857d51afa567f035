"""One `run` per data dir: an exclusive OS lock on ``<data_dir>/agent.lock``.

The OS drops the lock when the process dies (even by SIGKILL), so a crash never
leaves a stale lock behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from agent.errors import AgentError


class AlreadyRunning(AgentError):
    """Another `kiosk-agent run` holds this data dir."""


class DirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "agent.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> DirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held for the process lifetime
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            other = fh.read().strip() or "?"
            fh.close()
            raise AlreadyRunning(
                f"another kiosk-agent run (pid {other}) is already using {self.path.parent}; stop it first"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None
