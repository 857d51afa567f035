"""Health, the operator page and the favicon."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from agent import ids, transactions
from agent.api import page
from agent.api.state import Kiosk

router = APIRouter()


@router.get("/healthz", tags=["meta"])
def healthz(kiosk: Kiosk) -> dict[str, Any]:
    return {"ok": True, "time": ids.iso_utc(kiosk.now())}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def operator_page(request: Request, kiosk: Kiosk, lang: str | None = None) -> HTMLResponse:
    if not page.is_loopback(request.client.host if request.client else ""):
        return HTMLResponse("forbidden", status_code=403)
    with kiosk.access() as led:
        cat = transactions.current_catalog(led)
    return page.render(cat, lang=lang or kiosk.cfg.settings.printer.lang, token=kiosk.token)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response(status_code=204)
