"""The high-water mark: what the ledger has committed, kept outside the database.

SQLite drops every WAL frame after a damaged one without a word, and an old copy of the file can
be put back; either way the ledger opens *behind* what it committed and would reissue tokens that
citizens already hold. ``<ledger>.hwm`` holds the head seq, the head hash and the highest leased
serial issued (plus the server's head for this device, and a damage mark), and
:func:`check` compares the ledger with it at open.

The file is two fixed 512-byte slots written in turn with one ``pwrite`` each (no rename: a
commit must stay one rename-free write), each slot carrying a counter and an HMAC-SHA256 keyed
from the ledger key. The newest slot whose MAC holds is the mark; a torn write spoils one slot,
never both. The MAC also proves the key: a ledger whose first page fails while the mark's MAC
holds is damaged, not opened with a wrong key. A missing or foreign mark (a ledger made before
this file existed, a rekey, a restore) is seeded from the ledger as it opens.

Durability: each append writes its slot after the commit (a crash in between leaves the mark one
behind, never ahead) into the page cache; it is ``fdatasync``'d at most every ``sync_every_s``
seconds (at the first append after that), at each checkpoint and at close, and at once for the
server's head and a damage mark. Frames lost to a flip at rest, or an older copy put back, are
caught whatever the setting; only a power cut that loses the page cache *and* fsync'd WAL frames
inside that window could hide the last few commits. An fdatasync per append would cost as much as
the commit's own (measured: ~0.5 ms per append amortised even at one per 16 appends on this disk).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SLOT = 512
_LABEL = b"kiosk-agent high-water mark v1"


def hwm_path(ledger_path: Path) -> Path:
    return ledger_path.with_name(ledger_path.name + ".hwm")


def mac_key(hex_key: str) -> bytes:
    return hmac.new(bytes.fromhex(hex_key), _LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class Mark:
    device_id: str
    seq: int = 0
    hash: str = ""
    serial: int = 0  # highest leased serial issued (0: none)
    server_seq: int = 0  # the server's head for this device, from its last answer
    damaged: str = ""  # why the ledger was found damaged ("" = not)
    counter: int = 0

    def encode(self, key: bytes) -> bytes:
        body = json.dumps(
            {
                "c": self.counter,
                "d": self.device_id,
                "s": self.seq,
                "h": self.hash,
                "t": self.serial,
                "v": self.server_seq,
                "x": self.damaged[:120],
            },
            separators=(",", ":"),
        ).encode()
        tag = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        slot = body + b" " + tag
        if len(slot) >= SLOT:
            raise ValueError("high-water mark too long")
        return slot.ljust(SLOT - 1) + b"\n"


def _decode(raw: bytes, key: bytes) -> Mark | None:
    try:
        body, tag = raw.rstrip().rsplit(b" ", 1)
        if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest().encode(), tag):
            return None
        d: dict[str, Any] = json.loads(body)
        return Mark(d["d"], int(d["s"]), str(d["h"]), int(d["t"]), int(d["v"]), str(d["x"]), int(d["c"]))
    except (ValueError, KeyError, TypeError):
        return None


def _newest(data: bytes, key: bytes) -> Mark | None:
    marks = [m for m in (_decode(data[i : i + SLOT], key) for i in (0, SLOT)) if m is not None]
    return max(marks, key=lambda m: m.counter) if marks else None


def read(path: Path, key: bytes) -> Mark | None:
    """The newest slot whose MAC holds, or None (no file, both slots spoilt, another key)."""
    try:
        return _newest(path.read_bytes(), key)
    except FileNotFoundError:
        return None


def merge(mine: Mark, theirs: Mark) -> Mark:
    """What another process (a `txn new` beside `run`) wrote since our last write, folded into
    ours: the higher committed head, the higher serial and server head, damage if either saw it."""
    head = theirs if theirs.seq > mine.seq else mine
    return replace(
        mine,
        seq=head.seq,
        hash=head.hash,
        serial=max(mine.serial, theirs.serial),
        server_seq=max(mine.server_seq, theirs.server_seq),
        damaged=mine.damaged or theirs.damaged,
    )


def key_matches(ledger_path: Path, hex_key: str) -> bool:
    """True when the mark beside the ledger was written with this key (so the key is right)."""
    return read(hwm_path(ledger_path), mac_key(hex_key)) is not None


def reset(ledger_path: Path) -> None:
    """Forget the mark (a restore put an older ledger in place on purpose); seeded at next open."""
    hwm_path(ledger_path).unlink(missing_ok=True)


@dataclass
class HighWaterMark:
    """The open mark of one ledger: :meth:`advance` after each commit."""

    path: Path
    key: bytes
    mark: Mark
    sync_every_s: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _fd: int = field(default=-1, repr=False)
    _unsynced: int = field(default=0, repr=False)
    _synced_at: float = field(default=0.0, repr=False)

    @classmethod
    def open(cls, ledger_path: Path, hex_key: str, device_id: str) -> tuple[HighWaterMark, bool]:
        """The mark and whether it was found (False: a fresh one, to be seeded from the ledger)."""
        path = hwm_path(ledger_path)
        key = mac_key(hex_key)
        found = read(path, key)
        if found is not None and found.device_id != device_id:
            found = None  # another ledger's mark left behind
        hw = cls(path, key, found or Mark(device_id))
        hw._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        hw._synced_at = hw.clock()
        return hw, found is not None

    def _write(self, mark: Mark, *, sync: bool) -> None:
        counter = self.mark.counter
        theirs = _newest(os.pread(self._fd, 2 * SLOT, 0), self.key)
        if theirs is not None and theirs.counter > counter:  # another process wrote since we did
            mark, counter = merge(mark, theirs), theirs.counter
        mark = replace(mark, counter=counter + 1)
        os.pwrite(self._fd, mark.encode(self.key), (mark.counter % 2) * SLOT)
        self.mark = mark
        self._unsynced += 1
        if sync or self.clock() - self._synced_at >= self.sync_every_s:
            self.sync()

    def sync(self) -> None:
        if self._fd >= 0 and self._unsynced:
            getattr(os, "fdatasync", os.fsync)(self._fd)
            self._unsynced = 0
            self._synced_at = self.clock()

    def seed(self, seq: int, head_hash: str, serial: int) -> None:
        self._write(replace(self.mark, seq=seq, hash=head_hash, serial=serial), sync=True)

    def advance(self, seq: int, head_hash: str, serial: int | None) -> None:
        serial = max(self.mark.serial, serial or 0)
        self._write(replace(self.mark, seq=seq, hash=head_hash, serial=serial), sync=False)

    def note_server_head(self, server_seq: int) -> None:
        if server_seq != self.mark.server_seq:
            self._write(replace(self.mark, server_seq=server_seq), sync=True)

    def mark_damaged(self, why: str) -> None:
        if not self.mark.damaged:
            self._write(replace(self.mark, damaged=why or "damaged"), sync=True)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            except OSError:
                pass
            os.close(self._fd)
            self._fd = -1


def check(mark: Mark, seq: int, head_hash: str, serial: int, hash_at: Any) -> tuple[str, str] | None:
    """(alert code, what the operator reads) when the ledger may not issue tokens, else None.
    ``hash_at(seq)`` is the stored hash of a record (None if there is none)."""
    if mark.damaged:
        return "ledger_damaged", f"the ledger was found damaged ({mark.damaged})"
    if seq < mark.seq:
        return "ledger_behind", (
            f"the ledger holds {seq} records but {mark.seq} were committed ({mark.seq - seq} lost: "
            "damaged WAL frames or an older copy of the file)"
        )
    if mark.seq and hash_at(mark.seq) != mark.hash:
        return "ledger_behind", f"record {mark.seq} is not the one that was committed (an older copy?)"
    if serial < mark.serial:
        return "ledger_behind", "the ledger's token counter is behind the tokens already issued"
    if mark.server_seq > seq:
        return "server_ahead", (
            f"the server holds {mark.server_seq} records of this kiosk but the ledger only {seq}"
        )
    return None


__all__ = ["HighWaterMark", "Mark", "check", "hwm_path", "key_matches", "merge", "read", "reset"]
