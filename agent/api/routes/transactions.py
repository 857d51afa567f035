"""New, list, show, void and reprint: each parses, makes one call, formats."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from agent import errors, sales, transactions
from agent.api import queries
from agent.api.responses import error
from agent.api.state import ApiState, Kiosk
from hardware.errors import HardwareError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/transactions", tags=["transactions"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewTransaction(_Body):
    service: str = Field(min_length=1, max_length=40)
    amount: str = Field(
        default="", max_length=20, description="Rupees: 150 or 150.50; empty for a fee-only service"
    )
    mobile: str | None = Field(default=None, max_length=20)
    aadhaar: str | None = Field(default=None, max_length=20)
    fields: dict[str, str] = Field(default_factory=dict)
    operator: str | None = Field(default=None, min_length=1, max_length=40)


class VoidRequest(_Body):
    reason: str = Field(min_length=1, max_length=200)
    operator: str | None = Field(default=None, min_length=1, max_length=40)


@router.post("", status_code=201)
def new_transaction(
    body: NewTransaction,
    kiosk: Kiosk,
    response: Response,
    idempotency_key: str | None = Header(default=None, max_length=64),
) -> dict[str, Any]:
    """Answers right after the commit (the receipt is queued: ``print.state`` "queued"). With an
    ``Idempotency-Key`` seen before, the sale it made (200, ``Idempotent-Replay: true``)."""
    key = None if idempotency_key is None else sales.check_idempotency_key(idempotency_key)
    req = transactions.NewTxn(
        service=body.service,
        amount=body.amount,
        operator=body.operator,  # None: the one logged in by finger
        mobile=body.mobile or None,
        aadhaar=body.aadhaar or None,
        fields=body.fields,
    )
    then = sales.AfterCommit(printer=kiosk.printer, nudge=kiosk.on_commit, enqueue=kiosk.enqueue_print)
    done = sales.new_sale_once(kiosk.cfg, kiosk.access, req, online=kiosk.online, then=then, key=key)
    if done.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replay"] = "true"
    return dict(done.view, print=_print_block(kiosk, done.view, queued=not done.replayed))


def _print_block(kiosk: ApiState, view: transactions.TxnView, *, queued: bool) -> dict[str, Any]:
    """The receipt's state as the page shows it: "queued" for the worker, else the job's."""
    if not kiosk.cfg.settings.printer.enabled or view["kind"] != "sale":
        return {"state": "off"}
    if queued and kiosk.enqueue_print is not None:
        return {"state": "queued"}
    return {"state": view["print_state"] or "pending", "error": view["print_error"]}


@router.get("")
def list_transactions(
    kiosk: Kiosk,
    limit: int = Query(50, ge=1, le=500),
    pending: bool = False,
    rejected: bool = False,
    q: str | None = Query(None, max_length=64),
) -> dict[str, Any]:
    """Newest first. ``q``: a token, txn id or service code (prefix)."""
    with kiosk.access() as led:
        items = queries.recent(led, limit, pending=pending, rejected=rejected, q=q)
    return {"items": items}


@router.get("/{token}")
def show_transaction(token: str, kiosk: Kiosk) -> dict[str, Any]:
    ref = queries.check_token(token)
    try:
        with kiosk.access() as led:
            return dict(transactions.view(led.find(ref)), source="local")
    except errors.NotFound:
        if kiosk.remote_lookup is None:
            raise
    found = kiosk.remote_lookup(ref)
    if found is None:
        raise errors.NotFound("no transaction with that token here or at the server")
    return dict(found, source="server")


@router.post("/{token}/void")
def void_transaction(token: str, body: VoidRequest, kiosk: Kiosk) -> dict[str, Any]:
    ref = queries.check_ref(token)
    return dict(sales.void_sale(kiosk.cfg, kiosk.access, ref, body.reason, body.operator))


@router.post("/{token}/reprint", status_code=202)
def reprint_transaction(token: str, kiosk: Kiosk) -> Any:
    ref = queries.check_ref(token)
    if kiosk.reprint is None:
        return error(501, "printing_not_configured", "no printer is configured on this kiosk")
    with kiosk.access() as led:
        view = transactions.view(led.find(ref))
    try:
        result = kiosk.reprint(str(view["token"]))
    except errors.AgentError:
        raise
    except HardwareError as exc:  # its messages are written for the operator and carry no PII
        return error(503 if exc.transient else 422, "print_failed", str(exc)[:300])
    except Exception as exc:  # anything else: say what kind, never the data
        log.exception("reprint failed")
        return error(503, "print_failed", f"printing failed ({exc.__class__.__name__}); try again")
    if isinstance(result, dict) and result.get("print_state") != "printed":  # the printer said no
        why = str(result.get("print_error") or "the receipt did not print")
        return error(503, "print_failed", why[:300])
    return {"token": view["token"], "seq": view["seq"], "result": result}
