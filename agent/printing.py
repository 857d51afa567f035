"""Receipts for committed transactions (DESIGN section 7).

A print job is queued in the same commit as its transaction; printing
happens after the commit, outside any transaction. A failed print leaves the
job pending with the reason; only the operator prints again (`receipt
reprint`, marked DUPLICATE on paper), so nothing prints twice by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.errors import AgentError, InvalidInput
from agent.ledger import Ledger
from agent.transactions import current_catalog, view

log = logging.getLogger(__name__)


def enabled(cfg: Config) -> bool:
    p = cfg.settings.printer
    return p.url.strip().lower() not in ("", "none") or bool(p.usb_vid_pid)


def receipt_data(ledger: Ledger, row: dict[str, Any], *, duplicate: bool, lang: str) -> Any:
    from hardware import ReceiptData

    if row["kind"] != "sale":
        raise InvalidInput("only a sale has a receipt")
    v = view(row)
    try:
        svc = current_catalog(ledger).get(row["service"])
        name_en, name_hi = svc.name_en, svc.name_hi
    except AgentError:
        name_en = name_hi = row["service"]
    ref = v["mobile"] or v["aadhaar"] or "-"
    return ReceiptData(
        kiosk_code=ledger.kiosk_code or "UNENROLLED",
        token=v["token"],
        seq=row["seq"],
        service_en=name_en,
        service_hi=name_hi,
        amount_paise=row["amount_paise"],
        fee_paise=row["fee_paise"],
        created_at=datetime.fromtimestamp(row["created_at"] / 1000, UTC),
        citizen_ref_masked=ref,
        hash_hex=row["hash"],
        duplicate=duplicate,
        lang=lang,  # type: ignore[arg-type]
    )


def open_configured(cfg: Config) -> Any:
    from hardware import open_printer

    p = cfg.settings.printer
    return open_printer(
        p.url, width_dots=p.width_dots, usb_id=p.usb_vid_pid or None, write_timeout=p.timeout_s
    )


def _set_job(ledger: Ledger, job_id: int, state: str, error: str | None) -> None:
    with ledger.write() as conn:
        conn.execute(
            "UPDATE print_jobs SET state = ?, last_error = ?, attempts = attempts + 1, updated_at = ? "
            "WHERE id = ?",
            (state, error, ledger.now(), job_id),
        )


Guard = Callable[[], AbstractContextManager[Any]]


def print_job(
    cfg: Config, ledger: Ledger, job_id: int, printer: Any = None, guard: Guard = nullcontext
) -> tuple[str, str | None]:
    """Print one job; return (state, reason). Never raises for printer trouble.
    ``guard`` is held around ledger use only, never across the printer I/O."""
    from hardware import HardwareError

    with guard():
        row = ledger.conn.execute("SELECT seq, duplicate FROM print_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise InvalidInput(f"no print job {job_id}")
        seq, duplicate = row
        data = receipt_data(
            ledger, ledger.by_seq(seq), duplicate=bool(duplicate), lang=cfg.settings.printer.lang
        )
    own = printer is None
    printer = printer or open_configured(cfg)
    try:
        printer.print_receipt(data, sign=ledger.sign)
    except HardwareError as exc:
        reason = str(exc)[:200]
        with guard():
            _set_job(ledger, job_id, "pending", reason)
        log.warning("receipt for seq %d not printed: %s", seq, reason)
        return "pending", reason
    finally:
        if own:
            printer.close()
    with guard():
        _set_job(ledger, job_id, "printed", None)
    return "printed", None


def first_print(
    cfg: Config, ledger: Ledger, seq: int, guard: Guard = nullcontext, printer: Any = None
) -> tuple[str, str | None]:
    """The one automatic print of a new transaction's receipt."""
    with guard():
        row = ledger.conn.execute(
            "SELECT id FROM print_jobs WHERE seq = ? AND attempts = 0 AND state = 'pending' "
            "ORDER BY id LIMIT 1",
            (seq,),
        ).fetchone()
    if row is None:
        return "none", None
    return print_job(cfg, ledger, int(row[0]), printer, guard=guard)


def reprint(cfg: Config, ledger: Ledger, ref: str, guard: Guard = nullcontext) -> dict[str, Any]:
    """Print again, marked DUPLICATE; earlier pending jobs of it are closed as superseded."""
    if not enabled(cfg):
        raise InvalidInput('no printer is configured ([printer] url is "none")')
    with guard():
        row = ledger.find(ref)
    if row["kind"] != "sale":
        raise InvalidInput("only a sale has a receipt")
    now = ledger.now()
    with guard(), ledger.write() as conn:
        cur = conn.execute(
            "INSERT INTO print_jobs (seq, state, duplicate, created_at, updated_at) "
            "VALUES (?, 'pending', 1, ?, ?)",
            (row["seq"], now, now),
        )
        job_id = int(cur.lastrowid)
    state, reason = print_job(cfg, ledger, job_id, guard=guard)
    if state == "printed":
        with guard(), ledger.write() as conn:
            conn.execute(
                "UPDATE print_jobs SET state = 'failed', last_error = 'superseded by a reprint', "
                "updated_at = ? "
                "WHERE seq = ? AND id < ? AND state = 'pending'",
                (ledger.now(), row["seq"], job_id),
            )
    return {
        "token": view(row)["token"],
        "seq": row["seq"],
        "print_state": state,
        "print_error": reason,
        "duplicate": True,
    }


def render(cfg: Config, ledger: Ledger, ref: str, png: Path) -> Path:
    from hardware import render_png

    data = receipt_data(ledger, ledger.find(ref), duplicate=False, lang=cfg.settings.printer.lang)
    return Path(render_png(data, cfg.settings.printer.width_dots, png, sign=ledger.sign))


def verify_qr(ledger: Ledger, text: str) -> dict[str, Any]:
    from hardware import verify_receipt_qr
    from hardware.errors import HardwareError

    try:
        doc = dict(verify_receipt_qr(text.strip(), ledger.public_key))
    except HardwareError as exc:
        raise InvalidInput(f"receipt QR does not verify: {exc}") from None
    try:  # signed by this device: it must also match the ledger
        row = ledger.find(str(doc["token"]))
    except AgentError:
        raise InvalidInput("receipt QR is signed by this kiosk but its token is not in the ledger") from None
    if row["seq"] != doc["seq"] or not row["hash"].startswith(str(doc["hash_prefix"])):
        raise InvalidInput("receipt QR is signed by this kiosk but does not match the ledger record")
    return doc
