"""Receipts for committed transactions (DESIGN section 7).

A print job is queued in the same commit as its transaction; printing
happens after the commit, outside any transaction. A failed print leaves the
job pending with the reason; only the operator prints again (`receipt
reprint`, marked DUPLICATE on paper), so nothing prints twice by itself.

Under ``run`` one :class:`PrintWorker` owns the printer: one thread, one connection, jobs in
the order they came (new sales' receipts, reprints, the status poll), so two sales at once never
fight over the printer, and the sale's answer never waits for it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
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


class PrintWorker:
    """The one owner of the printer under ``run``: a thread taking jobs from a queue in order.

    ``printer`` None opens ``[printer]`` once and keeps the connection (the transport reconnects
    after a drop). :attr:`state` is the printer's last known state ("ok", "paper_out", "offline",
    "disconnected", ...): set after every print, from a status query right after a failed one, so
    paper out shows in ``status`` within a second of the failed receipt.
    """

    def __init__(self, cfg: Config, access: LedgerProvider, printer: Printer | None = None) -> None:
        self.cfg = cfg
        self.access = access
        self._printer = printer
        self._own = printer is None
        self._jobs: queue.Queue[tuple[Callable[[], object], Future[object]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="print-worker", daemon=True)
        self.state = "unknown"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Let the receipt being printed finish (at most ``timeout_s``), drop the ones still waiting
        (their jobs stay pending in the ledger: the operator reprints), close the printer."""
        while True:
            try:
                dropped = self._jobs.get_nowait()
            except queue.Empty:
                break
            if dropped is not None:
                dropped[1].cancel()
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout_s)
        if self._own and self._printer is not None:
            self._printer.close()

    def submit(self, fn: Callable[[], object]) -> Future[object]:
        fut: Future[object] = Future()
        self._jobs.put((fn, fut))
        return fut

    def enqueue_first_print(self, seq: int) -> Future[object]:
        """A new sale's receipt (the job queued in its commit), printed after the answer."""
        return self.submit(lambda: self._outcome(first_print(self.cfg, self.access, seq, self._device())))

    def reprint(self, ref: str, timeout_s: float = 30.0) -> ReprintResult:
        """Queued behind the jobs before it; the caller (the API) waits for the outcome."""
        fut = self.submit(lambda: self._reprint(ref))
        try:
            return fut.result(timeout_s)  # type: ignore[return-value]
        except (FutureTimeout, CancelledError):  # behind a long queue, or dropped at shutdown
            from hardware.errors import PrinterUnavailable

            raise PrinterUnavailable("The printer is busy with earlier receipts; try again.") from None

    def check(self) -> Future[object]:
        """The status poll, in line with the jobs."""
        return self.submit(self._poll)

    def _reprint(self, ref: str) -> ReprintResult:
        result = reprint(self.cfg, self.access, ref, self._device())
        self._outcome(PrintOutcome(result["print_state"], result["print_error"]))  # type: ignore[arg-type]
        return result

    def _device(self) -> Printer:
        if self._printer is None:
            self._printer = open_configured(self.cfg)
        return self._printer

    def _outcome(self, outcome: PrintOutcome) -> PrintOutcome:
        if outcome.state == "printed":
            self.state = "ok"
        elif outcome.state == "pending":
            self._poll()  # why it failed: paper out, cover open, unplugged ...
        return outcome

    def _poll(self) -> str:
        self.state = str(self._device().status())
        return self.state

    def _loop(self) -> None:
        while (item := self._jobs.get()) is not None:
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except Exception as exc:  # in its Future (a reprint's caller sees it); the worker goes on
                log.warning("print job failed: %s", exc.__class__.__name__)
                fut.set_exception(exc)


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
