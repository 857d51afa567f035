"""The DOIT&C pages: the network at a glance, LSPs and their kiosks and devices, enrollment
codes (create, see expiry, expire), revoke and reinstate with a reason, catalog versions with
their diff (and loading a new one, checked as `kiosk-server catalog load` checks it), and the
audit log with the token follow-ups. Every action is written to the audit log in the same
transaction as the change."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Connection

from server_stub import admin, catalog, fleet, statements
from server_stub.console import audit, network, render
from server_stub.console.web import DoitcDep, Viewer, checked_form, doitc
from server_stub.db import devices, kiosks, read, write
from server_stub.errors import BadRequest
from server_stub.routes.deps import AppState, StateDep

router = APIRouter(prefix="/console/admin", include_in_schema=False)

Ident = Annotated[str, Path(max_length=64, pattern=r"^[0-9A-Za-z-]+$")]
LspQuery = Annotated[str | None, Query(alias="lsp", max_length=32, pattern=r"^[0-9A-Za-z-]+$")]


def _ctx(v: Viewer, **more: object) -> dict[str, Any]:
    return {"user": v.user, "csrf": v.csrf, **more}


@router.get("")
def network_page(v: DoitcDep, st: StateDep) -> Response:
    with read(st.engine) as conn:
        states = network.kiosk_states(conn, st.config, st.now_ms(), detail=False)
        lsps = fleet.list_lsps(conn)
    glance = network.glance(states)
    return render.page("admin.html", **_ctx(v, glance=glance, lsps=lsps, states=network.STATES))


@router.get("/kiosks")
def kiosks_page(v: DoitcDep, st: StateDep, lsp: LspQuery = None) -> Response:
    with read(st.engine) as conn:
        states = network.kiosk_states(conn, st.config, st.now_ms(), lsp_id=lsp)
        kiosk_rows = {k.kiosk_code: k for k in fleet.list_kiosks(conn, lsp)}
        device_rows = fleet.list_devices(conn, lsp)
    return render.page(
        "admin_kiosks.html",
        **_ctx(v, kiosks=states, kiosk_rows=kiosk_rows, devices=device_rows, lsp=lsp, now_ms=st.now_ms()),
    )


def _reason(fields: dict[str, str]) -> str:
    reason = fields.get("reason", "").strip()
    if not reason or len(reason) > 200 or any(ord(c) < 32 for c in reason):
        raise BadRequest("give a reason of 1 to 200 printable characters", code="reason_required")
    return reason


def _lsp_of_kiosk(conn: Connection, kiosk_code: str) -> str | None:
    return conn.execute(sa.select(kiosks.c.lsp_id).where(kiosks.c.kiosk_code == kiosk_code)).scalar()


def _lsp_of_device(conn: Connection, device_id: str) -> str | None:
    return conn.execute(
        sa.select(kiosks.c.lsp_id)
        .join(devices, devices.c.kiosk_code == kiosks.c.kiosk_code)
        .where(devices.c.device_id == device_id)
    ).scalar()


def _device_change(st: AppState, v: Viewer, ident: str, action: str, reason: str) -> None:
    change = admin.revoke_device if action == audit.REVOKE else admin.reinstate_device
    now = st.now_ms()
    with write(st.engine) as conn:
        for device_id in change(conn, ident, now, actor=v.user.actor()):
            audit.record(
                conn, v.user.actor(), action, device_id, now, reason, _lsp_of_device(conn, device_id)
            )


def _back(fragment: str = "") -> Response:
    return RedirectResponse(f"/console/admin/kiosks{fragment}", status_code=303)


@router.post("/devices/{ident}/revoke")
async def revoke(request: Request, st: StateDep, ident: Ident) -> Response:
    v, fields = await checked_form(request, st)
    doitc(v)
    await run_in_threadpool(_device_change, st, v, ident, audit.REVOKE, _reason(fields))
    return _back()


@router.post("/devices/{ident}/reinstate")
async def reinstate(request: Request, st: StateDep, ident: Ident) -> Response:
    v, fields = await checked_form(request, st)
    doitc(v)
    await run_in_threadpool(_device_change, st, v, ident, audit.REINSTATE, _reason(fields))
    return _back()


def _new_code(st: AppState, v: Viewer, kiosk_code: str) -> admin.NewKiosk:
    now = st.now_ms()
    with write(st.engine) as conn:
        new = admin.issue_enrollment_code(
            conn, kiosk_code, now, st.config.enrollment_ttl_hours, actor=v.user.actor()
        )
        audit.record(
            conn, v.user.actor(), audit.ENROLL_CODE, kiosk_code, now, None, _lsp_of_kiosk(conn, kiosk_code)
        )
    return new


@router.post("/kiosks/{ident}/enrollment-code")
async def new_enrollment_code(request: Request, st: StateDep, ident: Ident) -> Response:
    v, _fields = await checked_form(request, st)
    doitc(v)
    new = await run_in_threadpool(_new_code, st, v, ident)
    return render.page("new_code.html", **_ctx(v, new=new, ttl=st.config.enrollment_ttl_hours))


def _expire(st: AppState, v: Viewer, kiosk_code: str) -> None:
    now = st.now_ms()
    with write(st.engine) as conn:
        admin.expire_enrollment_code(conn, kiosk_code, now, actor=v.user.actor())
        audit.record(
            conn, v.user.actor(), audit.ENROLL_EXPIRE, kiosk_code, now, None, _lsp_of_kiosk(conn, kiosk_code)
        )


@router.post("/kiosks/{ident}/expire-code")
async def expire_code(request: Request, st: StateDep, ident: Ident) -> Response:
    v, _fields = await checked_form(request, st)
    doitc(v)
    await run_in_threadpool(_expire, st, v, ident)
    return _back()


@router.get("/catalog")
def catalog_page(v: DoitcDep, st: StateDep, version: Annotated[int | None, Query(ge=1)] = None) -> Response:
    with read(st.engine) as conn:
        latest = catalog.latest_version(conn)
        shown = version or latest
        current = catalog.get_version(conn, shown)
        before = catalog.get_version(conn, shown - 1) if shown > 1 else None
    change = catalog.diff(before, current) if current else None
    return render.page(
        "catalog.html",
        **_ctx(v, latest=latest, shown=shown, current=current, change=change, versions=range(latest, 0, -1)),
    )


def _load_catalog(st: AppState, v: Viewer, text: str, allow_removal: bool) -> catalog.Diff:
    now = st.now_ms()
    with write(st.engine) as conn:
        change = catalog.add_version(conn, text, now, allow_removal=allow_removal)
        audit.record(conn, v.user.actor(), audit.CATALOG, f"version {change.version}", now)
    return change


@router.post("/catalog")
async def load_catalog(request: Request, st: StateDep) -> Response:
    v, fields = await checked_form(request, st)
    doitc(v)
    change = await run_in_threadpool(
        _load_catalog, st, v, fields.get("catalog", ""), fields.get("allow_removal") == "1"
    )
    return RedirectResponse(f"/console/admin/catalog?version={change.version}", status_code=303)


@router.get("/audit")
def audit_page(v: DoitcDep, st: StateDep) -> Response:
    with read(st.engine) as conn:
        entries = audit.entries(conn)
        lookups = audit.lookups(conn)
    return render.page("audit.html", **_ctx(v, entries=entries, lookups=lookups))


@router.get("/statements")
def statements_page(v: DoitcDep, st: StateDep) -> Response:
    with read(st.engine) as conn:
        lsps = fleet.list_lsps(conn)
        issued = {lsp.lsp_id: statements.issued_months(conn, lsp.lsp_id) for lsp in lsps}
    return render.page("admin_statements.html", **_ctx(v, lsps=lsps, issued=issued))


def _issue(st: AppState, v: Viewer, lsp_id: str, month: str) -> statements.Issued:
    with read(st.engine) as conn:
        if not admin.lsp_exists(conn, lsp_id):
            raise BadRequest("no such LSP", code="unknown_lsp")
    issued = statements.issue(st.engine, lsp_id, month, st.config, st.keys, st.now_ms())
    if issued.created:
        with write(st.engine) as conn:
            audit.record(
                conn, v.user.actor(), audit.STATEMENT, f"statement {issued.month}", st.now_ms(), None, lsp_id
            )
    return issued


@router.post("/statements")
async def issue_statement(request: Request, st: StateDep) -> Response:
    """Issue an LSP's statement for a month that is over (once: a second time shows the first)."""
    v, fields = await checked_form(request, st)
    doitc(v)
    lsp_id, month = fields.get("lsp", "")[:32], fields.get("month", "")[:7]
    issued = await run_in_threadpool(_issue, st, v, lsp_id, month)
    return RedirectResponse(
        f"/console/lsp/statements?lsp={issued.lsp_id}#statement-{issued.month}", status_code=303
    )
