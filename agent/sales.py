"""The one new-transaction flow, and the void rules beside it.

``kiosk-agent txn new``, the local API's ``POST /api/transactions`` and the
runner (through the API) all call :func:`new_sale`:

1. **validate** what the operator entered (``agent.transactions.build_draft``);
2. **commit** the record and **queue its receipt** in one short write transaction
   (:func:`commit_sale`, under the ledger lock);
3. after the commit, outside the lock (:func:`after_commit`): **print** the queued
   receipt (a printer problem leaves the job pending, never undoes the sale) and
   **nudge sync** (the runner's debounced "sync soon");
4. **answer** with the committed row's view.

Each step is its own function so the next step (issue 12: answer right after the
commit, print in one print worker, an idempotency key on the commit) moves a call,
not the rules. Whether printing is on comes from one place,
``cfg.settings.printer.enabled``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agent import operators, printing, transactions
from agent.config import Config
from agent.errors import InvalidInput
from agent.ledger import Draft, Ledger, LedgerProvider, Record, TxnRow, as_provider
from agent.transactions import NewTxn, TxnView

if TYPE_CHECKING:
    from hardware import Printer

log = logging.getLogger(__name__)

Online = bool | Callable[[], bool]


@dataclass(frozen=True)
class AfterCommit:
    """What happens once a sale is committed, outside the ledger lock.

    ``printer``: the printer to use (None: the configured one, opened for the job).
    ``nudge``: told about every committed transaction (the runner schedules a sync).
    """

    printer: Printer | None = None
    nudge: Callable[[TxnView], None] | None = None


def commit_sale(cfg: Config, access: LedgerProvider, req: NewTxn, *, online: Online = False) -> TxnView:
    """Validate, commit and queue the receipt: InvalidInput / NeedsConnection write nothing."""
    with access() as led:
        if not req.operator:  # the operator logged in by finger, else the configured one
            req = replace(req, operator=operators.current(cfg, led))
        return transactions.create(led, req, online=online, queue_print=cfg.settings.printer.enabled)


def after_commit(cfg: Config, access: LedgerProvider, view: TxnView, then: AfterCommit) -> TxnView:
    """Print the receipt queued with the sale, then nudge sync. Never raises: the sale stands."""
    if cfg.settings.printer.enabled and view["kind"] == "sale":
        view["print_state"], view["print_error"] = printing.first_print(
            cfg, access, view["seq"], then.printer
        )
    if then.nudge is not None:
        try:
            then.nudge(view)
        except Exception:  # committed already: a failed hook must not look like a failed sale
            log.exception("sync nudge failed after seq %s", view["seq"])
    return view


def new_sale(
    cfg: Config,
    ledger: Ledger | LedgerProvider,
    req: NewTxn,
    *,
    online: Online = False,
    then: AfterCommit | None = None,
) -> TxnView:
    """The whole flow: validate, commit, queue the print, print, nudge sync, answer."""
    access = as_provider(ledger)
    view = commit_sale(cfg, access, req, online=online)
    return after_commit(cfg, access, view, then or AfterCommit())


# -- voids ------------------------------------------------------------------


def void_draft(target: TxnRow, reason: str, operator: str) -> Draft:
    """The rules of a void: only a sale, only once, with a reason; a new record pointing at it."""
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise InvalidInput("give a reason for the void (1-200 characters)")
    if target["kind"] != "sale":
        raise InvalidInput("only a sale can be voided")
    if target["voided_by"] is not None:
        raise InvalidInput(f"token {target['token']} is already voided (seq {target['voided_by']})")
    return {
        "kind": "void",
        "operator": operator,
        "service": target["service"],
        "amount_paise": target["amount_paise"],
        "fee_paise": target["fee_paise"],
        "fields": {},
        "voids_seq": target["seq"],
        "reason": reason,
        "catalog_version": target["catalog_version"],
    }


def void(ledger: Ledger, ref: str, reason: str, operator: str) -> Record:
    """Append a void record for the sale ``ref``; the sale itself is never changed."""
    target = ledger.find(ref)
    draft = void_draft(target, reason, operator)
    try:
        return ledger.append(draft)
    except Exception as exc:  # the unique index on voids_seq: a void raced us
        if "UNIQUE" in str(exc):
            raise InvalidInput(f"token {target['token']} is already voided") from None
        raise


def void_sale(
    cfg: Config, ledger: Ledger | LedgerProvider, ref: str, reason: str, operator: str | None = None
) -> TxnView:
    """The CLI's and the API's void: ``operator`` None is the one logged in (else the configured one)."""
    with as_provider(ledger)() as led:
        rec = void(led, ref, reason, operator or operators.current(cfg, led))
        return transactions.view(led.find(rec["txn_id"]))


__all__ = ["AfterCommit", "after_commit", "commit_sale", "new_sale", "void", "void_draft", "void_sale"]
