"""The one new-transaction flow, and the void rules beside it.

``kiosk-agent txn new``, the local API's ``POST /api/transactions`` and the
runner (through the API) all call :func:`new_sale`:

1. **validate** what the operator entered (``agent.transactions.build_draft``);
2. **commit** the record, **queue its receipt** and store the request's idempotency key
   (if one was given) in one short write transaction (:func:`commit_sale`, under the
   ledger lock). A key seen before answers the sale it made instead (a client whose
   answer was lost retries with the same key: never a second sale);
3. after the commit, outside the lock (:func:`after_commit`): hand the receipt to the
   print worker (under ``run``: the answer never waits for the printer) or print it
   here (the CLI), and **nudge sync** (the runner's debounced "sync soon");
4. **answer** with the committed row's view.

Whether printing is on comes from one place, ``cfg.settings.printer.enabled``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from agent import operators, printing, transactions
from agent.config import Config
from agent.errors import IdempotencyKeyReused, InvalidInput
from agent.ledger import Draft, Ledger, LedgerProvider, Record, TxnRow, as_provider, idempotency
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
    ``enqueue``: the print worker's queue (``run``): the receipt prints after the answer.
    """

    printer: Printer | None = None
    nudge: Callable[[TxnView], None] | None = None
    enqueue: Callable[[int], Any] | None = None


class Committed(NamedTuple):
    view: TxnView
    replayed: bool  # True: the idempotency key was seen before; this is the sale it made


_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_idempotency_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidInput("Idempotency-Key must be 1-64 letters, digits, '-' or '_'")
    return key


def _request_mac(led: Ledger, req: NewTxn) -> str:
    body = json.dumps(dataclasses.asdict(req), sort_keys=True, separators=(",", ":")).encode()
    return idempotency.body_mac(idempotency.mac_key(led.sign), body)


def commit_sale(
    cfg: Config, access: LedgerProvider, req: NewTxn, *, online: Online = False, key: str | None = None
) -> Committed:
    """Validate, commit and queue the receipt: InvalidInput / NeedsConnection write nothing.
    ``key``: the client's idempotency key; seen before with the same request, the sale it made
    is answered (nothing written), with a different request IdempotencyKeyReused."""
    with access() as led:
        mac = _request_mac(led, req) if key is not None else ""
        if key is not None and (seen := led.idempotency_key(key)) is not None:
            if seen.body_mac != mac:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used for a different sale; send a new key"
                )
            return Committed(transactions.view(led.by_seq(seen.seq)), True)
        if not req.operator:  # the operator logged in by finger, else the configured one
            req = replace(req, operator=operators.current(cfg, led))
        view = transactions.create(
            led,
            req,
            online=online,
            queue_print=cfg.settings.printer.enabled,
            idem_key=None if key is None else (key, mac),
        )
        return Committed(view, False)


def after_commit(cfg: Config, access: LedgerProvider, view: TxnView, then: AfterCommit) -> TxnView:
    """Queue (or print) the receipt queued with the sale, then nudge sync. Never raises: the sale
    stands."""
    if cfg.settings.printer.enabled and view["kind"] == "sale":
        if then.enqueue is not None:
            try:
                then.enqueue(view["seq"])
            except Exception:  # committed already: the job stays pending, the operator reprints
                log.exception("receipt for seq %s not queued", view["seq"])
        else:
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
    return new_sale_once(cfg, ledger, req, online=online, then=then).view


def new_sale_once(
    cfg: Config,
    ledger: Ledger | LedgerProvider,
    req: NewTxn,
    *,
    online: Online = False,
    then: AfterCommit | None = None,
    key: str | None = None,
) -> Committed:
    """:func:`new_sale` with an idempotency key: a replay answers the first sale, and nothing
    after the commit (print, nudge) happens twice."""
    access = as_provider(ledger)
    done = commit_sale(cfg, access, req, online=online, key=key)
    if done.replayed:
        return done
    return Committed(after_commit(cfg, access, done.view, then or AfterCommit()), False)


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


__all__ = [
    "AfterCommit",
    "Committed",
    "after_commit",
    "check_idempotency_key",
    "commit_sale",
    "new_sale",
    "new_sale_once",
    "void",
    "void_draft",
    "void_sale",
]
