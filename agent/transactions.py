"""A new transaction: validate what the operator entered, then commit it.

Shared by the CLI and the local API, so both refuse the same things with the
same words. Nothing is written unless every check passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import catalog as catalog_mod
from agent import ids, money, pii
from agent.errors import InvalidInput, NeedsConnection
from agent.ledger import Ledger


@dataclass(frozen=True)
class NewTxn:
    service: str
    amount: str
    operator: str
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
            raise InvalidInput(f"field '{name}' given twice")
        out[name] = value
    return out


def current_catalog(ledger: Ledger) -> catalog_mod.Catalog:
    """The catalog the server sent at enrollment or last sync, else the bundled sample."""
    stored = ledger.meta("catalog_json")
    return catalog_mod.from_text(stored) if stored else catalog_mod.bundled()


def build_draft(
    req: NewTxn, cat: catalog_mod.Catalog, *, online: bool | Callable[[], bool], seal_key: str | None
) -> dict[str, Any]:
    """The record draft, or InvalidInput / NeedsConnection naming the problem."""
    svc = cat.get(req.service.strip().upper())
    if svc.online_only and not (online() if callable(online) else online):
        raise NeedsConnection(
            f"{svc.name_en} needs a live connection and the kiosk is offline; try again when the link is back"
        )
    amount = money.parse_rupees(req.amount, limit_paise=svc.max_amount_paise)
    fields = svc.check_fields(req.fields)
    draft: dict[str, Any] = {
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
    ledger: Ledger, req: NewTxn, *, online: bool | Callable[[], bool] = False, queue_print: bool = False
) -> dict[str, Any]:
    """Validate, then commit; returns the public view of the committed row."""
    draft = build_draft(req, current_catalog(ledger), online=online, seal_key=ledger.meta("server_seal_pub"))
    rec = ledger.append(draft, queue_print=queue_print)
    return view(ledger.find(rec["txn_id"]))


def view(row: dict[str, Any]) -> dict[str, Any]:
    """What the operator (and --json) sees of a row: masked, final token first."""
    import json

    token = row.get("final_token") or row.get("token")
    out: dict[str, Any] = {
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
        out["provisional_token"] = row["token"]
    if row["kind"] == "void":
        out["voids_seq"] = row["voids_seq"]
        out["token"] = row.get("voids_token")
        out["reason"] = row["reason"]
    else:
        out["voided_by"] = row.get("voided_by")
    return out
