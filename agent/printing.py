"""Receipts for committed transactions (DESIGN section 7).

A print job is queued in the same commit as its transaction; printing
happens after the commit, outside any transaction. A failed print leaves the
job pending with the reason; only the operator prints again (`receipt
reprint`, marked DUPLICATE on paper), so nothing prints twice by itself.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypedDict

from agent.config import Config
from agent.errors import AgentError, InvalidInput
from agent.ledger import Ledger, LedgerProvider, TxnRow, as_provider
from agent.transactions import current_catalog, view

if TYPE_CHECKING:
    from hardware import Printer, ReceiptData

log = logging.getLogger(__name__)


def receipt_data(ledger: Ledger, row: TxnRow, *, duplicate: bool, lang: str) -> ReceiptData:
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
        token=str(v["token"]),
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


def open_configured(cfg: Config) -> Printer:
    """The printer ``[printer]`` names (a NullPrinter when printing is off), opened on first use.
    The one place the agent builds a printer: a new transport goes in ``hardware.open_printer``."""
    from hardware import open_printer

    p = cfg.settings.printer
    return open_printer(
        p.url, width_dots=p.width_dots, usb_id=p.usb_vid_pid or None, write_timeout=p.timeout_s
    )


class PrintOutcome(NamedTuple):
    state: Literal["printed", "pending", "none"]  # "none": there was no job to print
    error: str | None


class ReprintResult(TypedDict):
    token: str | None
    seq: int
    print_state: str
    print_error: str | None
    duplicate: bool


def print_job(
    cfg: Config, ledger: Ledger | LedgerProvider, job_id: int, printer: Printer | None = None
) -> PrintOutcome:
    """Print one job; never raises for printer trouble. The ledger (its lock, when ``ledger``
    is a provider) is held only to read the job and store the outcome, never across the printer I/O.
    ``printer`` None: the configured one, opened for this job and closed after it."""
    from hardware import HardwareError

    access = as_provider(ledger)
    with access() as led:
        job = led.print_jobs.get(job_id)
        data = receipt_data(led, led.by_seq(job.seq), duplicate=job.duplicate, lang=cfg.settings.printer.lang)
        sign = led.sign
    own = printer is None
    printer = printer or open_configured(cfg)
    try:
        printer.print_receipt(data, sign=sign)
    except HardwareError as exc:
        reason = str(exc)[:200]
        with access() as led:
            led.print_jobs.finish(job_id, "pending", reason)
        log.warning("receipt for seq %d not printed: %s", job.seq, reason)
        return PrintOutcome("pending", reason)
    finally:
        if own:
            printer.close()
    with access() as led:
        led.print_jobs.finish(job_id, "printed", None)
    return PrintOutcome("printed", None)


def first_print(
    cfg: Config, ledger: Ledger | LedgerProvider, seq: int, printer: Printer | None = None
) -> PrintOutcome:
    """The one automatic print of a new transaction's receipt (the job queued with it)."""
    access = as_provider(ledger)
    with access() as led:
        job_id = led.print_jobs.first_print_of(seq)
    if job_id is None:
        return PrintOutcome("none", None)
    return print_job(cfg, access, job_id, printer)


def reprint(
    cfg: Config, ledger: Ledger | LedgerProvider, ref: str, printer: Printer | None = None
) -> ReprintResult:
    """Print again, marked DUPLICATE once a copy has printed (a receipt that never came out prints
    as the original); earlier pending jobs of it are closed as superseded."""
    if not cfg.settings.printer.enabled:
        raise InvalidInput('no printer is configured ([printer] url is "none")')
    access = as_provider(ledger)
    with access() as led:
        row = led.find(ref)
        if row["kind"] != "sale":
            raise InvalidInput("only a sale has a receipt")
        duplicate = led.print_jobs.ever_printed(row["seq"])
        job_id = led.print_jobs.add(row["seq"], duplicate=duplicate)
    state, reason = print_job(cfg, access, job_id, printer)
    if state == "printed":
        with access() as led:
            led.print_jobs.supersede(row["seq"], job_id)
    return {
        "token": view(row)["token"],
        "seq": row["seq"],
        "print_state": state,
        "print_error": reason,
        "duplicate": duplicate,
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
