"""Room on the data dir's disk: refuse new sales before SQLite could fail, warn earlier, and keep
a reserve file whose space is given back when the disk fills, so the ledger can still open (its
``-shm`` is mmap'd: a page the disk can't back is a SIGBUS), checkpoint and store sync answers.

The rule: below ``min_free`` the reserve is released (sales are refused at that level anyway, so
only acks, meta and checkpoints use it) and sales are refused until there is room for
``min_free`` *and* a new reserve; then the reserve is made again before the next sale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import fsutil
from agent.errors import DiskFull

log = logging.getLogger(__name__)

MB = 1024 * 1024


@dataclass(frozen=True)
class Space:
    folder: Path
    min_free: int
    warn_free: int
    reserve_size: int

    @classmethod
    def from_config(cls, cfg: Any) -> Space:
        s = cfg.settings.ledger
        return cls(
            cfg.data_dir, s.min_free_mb * MB, max(s.warn_free_mb, s.min_free_mb) * MB, s.reserve_mb * MB
        )

    @property
    def reserve(self) -> Path:
        return self.folder / "ledger.reserve"

    def free(self) -> int:
        return fsutil.free_bytes(self.folder)

    def before_write(self) -> int:
        """Free bytes; the reserve goes back to the disk when below ``min_free``."""
        free = self.free()
        if free < self.min_free and fsutil.release_reserve(self.reserve):
            log.warning("disk nearly full (%d KB free): released the ledger's reserve", free // 1024)
            free = self.free()
        return free

    def at_open(self) -> None:
        """Before the ledger opens: the reserve goes back to the disk when it is nearly full, and is
        made (once there is room) so a disk that fills before the first sale still has one."""
        free = self.before_write()
        if self.reserve_size and free >= self.min_free + self.reserve_size and not self.reserve.exists():
            try:
                fsutil.keep_reserve(self.reserve, self.reserve_size)
            except OSError:
                log.warning("could not make the ledger's disk reserve (%d MB)", self.reserve_size // MB)

    def _refuse(self, free: int) -> DiskFull:
        need = (self.min_free + self.reserve_size) // MB
        return DiskFull(
            f"the disk holding {self.folder} is nearly full ({free // MB} MB free; sales need {need} MB): "
            "new sales are refused; free disk space (old backups, downloads), then try again"
        )

    def check_sale(self) -> None:
        """DiskFull unless there is room for a sale (and the reserve, made again if it was spent)."""
        free = self.before_write()
        if free < self.min_free:
            raise self._refuse(free)
        if self.reserve_size and not self.reserve.exists():
            if free < self.min_free + self.reserve_size:
                raise self._refuse(free)
            try:
                fsutil.keep_reserve(self.reserve, self.reserve_size)
            except OSError:
                raise self._refuse(self.free()) from None
            log.info("made the ledger's disk reserve again (%d MB)", self.reserve_size // MB)

    def alert(self) -> dict[str, Any] | None:
        """The status alert for the disk: disk_full (sales refused), disk_low (warning), or None."""
        free = self.free()
        detail = {
            "free_mb": free // MB,
            "min_free_mb": self.min_free // MB,
            "warn_free_mb": self.warn_free // MB,
        }
        spent = self.reserve_size and not self.reserve.exists()
        if free < self.min_free or (spent and free < self.min_free + self.reserve_size):
            return {"code": "disk_full", "severity": "error", "detail": detail}
        if free < self.warn_free:
            return {"code": "disk_low", "severity": "warning", "detail": detail}
        return None


__all__ = ["Space"]
