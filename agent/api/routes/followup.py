"""Follow-up of any token, checking any kiosk's receipt, and the day at a glance (issue 14)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from agent import daysummary, directory, errors, transactions
from agent.api import queries
from agent.api.responses import error
from agent.api.state import Kiosk
from hardware.errors import HardwareError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["follow-up"])


class ReceiptQR(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    qr: str = Field(min_length=1, max_length=400, description="the text of a scanned receipt QR")


@router.get("/lookup/{token}")
def lookup(token: str, kiosk: Kiosk) -> Any:
    """A token from any kiosk: this kiosk's ledger first, then the server (what it reveals of
    another LSP's token is its summary). Offline, says so instead of "not found"."""
    ref = queries.check_token(token)
    try:
        with kiosk.access() as led:
            return {"source": "local", "txn": transactions.view(led.find(ref))}
    except errors.NotFound:
        pass
    if kiosk.remote_lookup is None or not kiosk.online():
        return error(503, "offline_lookup", "offline: only this kiosk's own tokens can be looked up")
    found = kiosk.remote_lookup(ref)
    if found is None:
        return error(503, "server_unreachable", "the server did not answer the lookup; try again")
    if found.get("status") == "unknown":
        return error(404, "not_found", "no transaction with that token here or at the server")
    return {"source": "server", "status": found}


@router.post("/receipts/verify")
def verify_receipt(body: ReceiptQR, kiosk: Kiosk) -> Any:
    """A scanned receipt QR from any kiosk, checked with no network (the device directory)."""
    try:
        doc = directory.verify_receipt(kiosk.cfg, kiosk.access, body.qr)
    except directory.ReceiptRefused as exc:
        return error(422, exc.code, exc.message)
    return dict(doc, ok=True)


@router.get("/day")
def day(kiosk: Kiosk) -> dict[str, Any]:
    """Today's count, cash and fees per service, with the ledger head, signed by the device."""
    with kiosk.access() as led:
        return daysummary.summary(led)


@router.post("/day/print")
def print_day(kiosk: Kiosk) -> Any:
    if not kiosk.cfg.settings.printer.enabled:
        return error(501, "printing_not_configured", "no printer is configured on this kiosk")
    with kiosk.access() as led:
        names = {s.code: s.name_en for s in transactions.current_catalog(led).services}
    try:
        return daysummary.print_summary(kiosk.cfg, kiosk.access, names, kiosk.printer)
    except HardwareError as exc:
        return error(503 if exc.transient else 422, "print_failed", str(exc)[:300])


__all__ = ["router"]
