"""A transaction's rules: validate what the operator entered into a draft, commit it,
and the masked view of a stored row that every screen and --json shows.

``agent.sales`` is the flow around it (commit, print, nudge sync) that the CLI, the
local API and the runner call, so all refuse the same things with the same words.
Nothing is written unless every check passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict, cast

from agent import catalog as catalog_mod
from agent import ids, money, pii
from agent.errors import InvalidInput, NeedsConnection
from agent.ledger import Draft, Ledger, Record, TxnRow


class TxnView(TypedDict):
    """What the operator (and --json, and the local API) sees of a row: masked, final token first."""

    txn_id: str
    seq: int
    kind: str
    token: str  # the final token once the server assigned one; a void shows the voided sale's
    service: str
    amount_paise: int
    fee_paise: int
    created_at: str
    operator: str
    hash: str
    fields: dict[str, str]
    mobile: str | None
    aadhaar: str | None
    sync_state: str | None
    sync_error: str | None
    print_state: str | None
    print_error: str | None
    provisional_token: NotRequired[str]
    voids_seq: NotRequired[int | None]
    reason: NotRequired[str | None]
    voided_by: NotRequired[int | None]


@dataclass(frozen=True)
class NewTxn:
    """What the operator entered. ``operator`` None: the one logged in by finger, else the configured one."""

    service: str
    amount: str
    operator: str | None
    mobile: str | None = None
    aadhaar: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


def parse_field_options(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInput("each --field must look like NAME=VALUE")
        if name in out:
            raise InvalidInput("a field is given twice")
        out[name] = value
    return out


def current_catalog(ledger: Ledger) -> catalog_mod.Catalog:
    """The catalog the server sent at enrollment or last sync, else the bundled sample."""
    stored = ledger.meta("catalog_json")
    return catalog_mod.from_text(stored) if stored else catalog_mod.bundled()


def build_draft(
    req: NewTxn, cat: catalog_mod.Catalog, *, online: bool | Callable[[], bool], seal_key: str | None
) -> Draft:
    """The record draft, or InvalidInput / NeedsConnection naming the problem."""
    svc = cat.get(req.service.strip().upper())
    if svc.online_only and not (online() if callable(online) else online):
        raise NeedsConnection(
            f"{svc.name_en} needs a live connection and the kiosk is offline; try again when the link is back"
        )
    if svc.fee_only:
        if req.amount.strip() and money.parse_rupees(req.amount) != 0:
            raise InvalidInput(f"{svc.name_en} takes only its fee; leave the amount out")
        amount = 0
    else:
        amount = money.parse_rupees(req.amount, limit_paise=svc.max_amount_paise)
    fields = svc.check_fields(req.fields)
    if not req.operator:
        raise InvalidInput("say which operator is serving (--operator)")
    draft: Draft = {
        "kind": "sale",
        "operator": req.operator,
        "service": svc.code,
        "amount_paise": amount,
        "fee_paise": svc.fee_paise,
        "fields": fields,
        "catalog_version": cat.version,
    }
    if req.mobile:
        if svc.mobile == "none":
            raise InvalidInput(f"service {svc.code} does not take a mobile number")
        draft["mobile"] = pii.normalise_mobile(req.mobile)
    elif svc.mobile == "required":
        raise InvalidInput(f"service {svc.code} needs --mobile")
    if req.aadhaar:
        if svc.aadhaar == "none":
            raise InvalidInput(f"service {svc.code} does not take an Aadhaar number")
        number = pii.normalise_aadhaar(req.aadhaar)
        if not seal_key:
            raise InvalidInput(
                "Aadhaar numbers can be taken only after this kiosk is enrolled with the server "
                "(kiosk-agent enroll); leave --aadhaar out for now"
            )
        from sync.wire import sealing

        draft["aadhaar_last4"] = number[-4:]
        draft["aadhaar_sealed"] = sealing.seal(seal_key, number)
    elif svc.aadhaar == "required":
        raise InvalidInput(f"service {svc.code} needs --aadhaar")
    return draft


def create(
    ledger: Ledger,
    req: NewTxn,
    *,
    online: bool | Callable[[], bool] = False,
    queue_print: bool = False,
    idem_key: tuple[str, str] | None = None,
) -> TxnView:
    """Validate, then commit (and queue the receipt in the same commit); returns the view of the
    committed row. The flow's commit step: ``agent.sales.new_sale`` is the whole flow."""
    draft = build_draft(req, current_catalog(ledger), online=online, seal_key=ledger.meta("server_seal_pub"))
    rec = ledger.append(draft, queue_print=queue_print, idem_key=idem_key)
    return committed_view(rec, queue_print=queue_print)


def committed_view(rec: Record, *, queue_print: bool) -> TxnView:
    """The view of a sale just committed, without reading it back: what ``find`` would give then
    (pending, its receipt queued or not, not voided). A void's view needs its sale: read back."""
    row: dict[str, Any] = dict(rec)
    row.update(
        sync_state="pending",
        sync_error=None,
        final_token=None,
        print_state="pending" if queue_print else None,
        print_error=None,
        voided_by=None,
        voids_token=None,
    )
    return view(cast(TxnRow, row))


def view(row: TxnRow) -> TxnView:
    """What the operator (and --json) sees of a row: masked, final token first."""
    token = row.get("final_token") or row.get("token") or ""  # a sale always has one
    out: TxnView = {
        "txn_id": row["txn_id"],
        "seq": row["seq"],
        "kind": row["kind"],
        "token": token,
        "service": row["service"],
        "amount_paise": row["amount_paise"],
        "fee_paise": row["fee_paise"],
        "created_at": ids.iso_utc(row["created_at"]),
        "operator": row["operator"],
        "hash": row["hash"],
        "fields": json.loads(row["fields"]) if isinstance(row["fields"], str) else row["fields"],
        "mobile": pii.mask_mobile(row.get("mobile")),
        "aadhaar": pii.mask_aadhaar(row.get("aadhaar_last4")),
        "sync_state": row.get("sync_state"),
        "sync_error": row.get("sync_error"),
        "print_state": row.get("print_state"),
        "print_error": row.get("print_error"),
    }
    if row.get("final_token") and row.get("token") != row["final_token"]:
        out["provisional_token"] = str(row["token"])
    if row["kind"] == "void":
        out["voids_seq"] = row["voids_seq"]
        out["token"] = row.get("voids_token") or ""
        out["reason"] = row["reason"]
    else:
        out["voided_by"] = row.get("voided_by")
    return out
