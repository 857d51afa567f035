"""The kiosk's status and catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agent import alerts, transactions
from agent.api import queries
from agent.api.state import Kiosk

router = APIRouter(prefix="/api", tags=["kiosk"])


@router.get("/status")
def status(kiosk: Kiosk) -> dict[str, Any]:
    with kiosk.access() as led:
        doc = queries.status(led, kiosk.cfg)
    doc["online"] = kiosk.online()
    if kiosk.status_extra is not None:
        extra = kiosk.status_extra()
        doc.update(extra, alerts=[*doc.get("alerts", []), *extra.get("alerts", [])])
    doc["alerts"] = alerts.merged(doc, kiosk.cfg)
    return doc


@router.get("/catalog")
def catalog(kiosk: Kiosk) -> dict[str, Any]:
    with kiosk.access() as led:
        cat = transactions.current_catalog(led)
    return {"version": cat.version, "services": [s.public() for s in cat.services]}
