"""The device directory on the kiosk: signed pages of every enrolled device's public key, kept as
files in ``<data_dir>/directory/`` and checked against the server's pinned key on every load, so
a receipt QR from any kiosk verifies with no network (issue 14).

:func:`pull` fetches the pages since the newest stored version (the runner calls it after a good
sync); :func:`load` reads and verifies them (a page that fails is refused, never trusted);
:func:`verify_receipt` checks a scanned QR: this kiosk's own receipts against its key and ledger,
any other kiosk's against the directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.config import Config
from agent.errors import InvalidInput
from agent.fsutil import atomic_write, private_dir
from agent.ledger import Ledger, LedgerProvider, as_provider
from sync.client import SyncClient
from sync.wire import canonical
from sync.wire.directory import DirectoryEntry, DirectoryPage, verify_page

log = logging.getLogger(__name__)

FOLDER = "directory"
MAX_PAGES_PER_PULL = 200


class ReceiptRefused(InvalidInput):
    """A receipt QR that is not accepted; ``code`` says why (the page's message): receipt_malformed,
    receipt_unknown_kiosk or receipt_forged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Directory:
    """What the verified pages say: the devices of each kiosk code, the newest version held, and
    how many stored pages were refused (their signature did not verify: never used)."""

    by_kiosk: dict[str, list[DirectoryEntry]] = field(default_factory=dict)
    version: int = 0
    refused: int = 0

    @property
    def devices(self) -> int:
        return sum(len(v) for v in self.by_kiosk.values())


def folder(cfg: Config) -> Path:
    return cfg.data_dir / FOLDER


def load(cfg: Config, server_key_b64: str | None) -> Directory:
    """Every stored page whose signature verifies under the server's key."""
    out = Directory()
    where = folder(cfg)
    if not server_key_b64 or not where.is_dir():
        return out
    key = canonical.load_public_key_b64(server_key_b64)
    for path in sorted(where.glob("page-*.json")):
        try:
            page = DirectoryPage.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError):
            page = None
        if page is None or not verify_page(key, page):
            out.refused += 1
            log.warning("directory page %s does not verify: ignored", path.name)
            continue
        out.version = max(out.version, page.body.version)
        for d in page.body.devices:
            out.by_kiosk.setdefault(d.kiosk_code, []).append(d)
    return out


def pull(cfg: Config, server_key_b64: str, client: SyncClient) -> dict[str, int]:
    """Fetch and store the pages since the newest held; a page that does not verify is not stored
    (raises InvalidInput: someone between us and the server, or a server with another key)."""
    key = canonical.load_public_key_b64(server_key_b64)
    since = load(cfg, server_key_b64).version
    added = pages = 0
    while pages < MAX_PAGES_PER_PULL:
        page = client.directory(since)
        if not verify_page(key, page) or page.body.since != since or page.body.version < since:
            raise InvalidInput("the server's device directory is not signed by its key; nothing stored")
        if not page.body.devices:
            break
        private_dir(folder(cfg))
        name = f"page-{page.body.since:016d}-{page.body.version:016d}.json"
        atomic_write(folder(cfg) / name, page.model_dump_json().encode("utf-8"))
        added += len(page.body.devices)
        pages += 1
        since = page.body.version
        if not page.body.more:
            break
    return {"pages": pages, "devices": added, "version": since}


def _own(led: Ledger) -> dict[str, Any]:
    return {
        "kiosk_code": led.kiosk_code,
        "server_key": led.meta("server_sign_pub"),
        "public_key": led.public_key,
    }


def verify_receipt(cfg: Config, ledger: Ledger | LedgerProvider, text: str) -> dict[str, Any]:
    """A genuine receipt's fields (``checked_with`` says how), or InvalidInput saying why not."""
    from agent import printing
    from hardware.errors import HardwareError
    from hardware.receipt import parse_receipt_qr, verify_receipt_qr

    access = as_provider(ledger)
    try:
        doc = parse_receipt_qr(text)
    except HardwareError as exc:
        raise ReceiptRefused("receipt_malformed", f"receipt QR does not verify: {exc}") from None
    with access() as led:
        own = _own(led)
        if doc["kiosk_code"] in (own["kiosk_code"], "UNENROLLED"):
            try:
                return dict(printing.verify_qr(led, text), checked_with="ledger")
            except InvalidInput as exc:
                raise ReceiptRefused("receipt_forged", exc.message) from None
    entries = load(cfg, own["server_key"]).by_kiosk.get(str(doc["kiosk_code"]), [])
    if not entries:
        raise ReceiptRefused(
            "receipt_unknown_kiosk",
            "receipt QR names a kiosk this kiosk's directory does not hold yet; it can't be checked "
            "here until the directory is pulled (connect and sync), or the receipt is not genuine",
        )
    for entry in entries:
        try:
            found = verify_receipt_qr(text, canonical.load_public_key_b64(entry.public_key))
        except (HardwareError, ValueError):
            continue
        return dict(found, checked_with="directory", device_id=entry.device_id)
    raise ReceiptRefused(
        "receipt_forged",
        "receipt QR does not verify: its signature is not that kiosk's; the receipt was altered or forged",
    )


__all__ = ["Directory", "ReceiptRefused", "folder", "load", "pull", "verify_receipt"]
