"""The LSP's pages: its kiosks with their state, a kiosk with its days, a day's and a month's
reconciliation with CSV / XLSX / JSON downloads, its signed statements, the token follow-ups its
kiosks asked, and (an LSP admin) its people.

Every page takes the LSP from the session (an LSP user) or from ``lsp=ID`` (a DOIT&C admin); an
LSP user asking for another LSP is refused (403), and so is a kiosk of another LSP, with the same
answer as a kiosk that does not exist."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from server_stub import monthly, reconcile, statements
from server_stub.auth import check_kiosk_of_lsp
from server_stub.console import audit, network, render, reports, users
from server_stub.console.web import Viewer, ViewerDep, checked_form, lsp_of
from server_stub.db import read, write
from server_stub.errors import Forbidden
from server_stub.routes.deps import AppState, StateDep

router = APIRouter(prefix="/console/lsp", include_in_schema=False)

LspQuery = Annotated[str | None, Query(alias="lsp", max_length=32, pattern=r"^[0-9A-Za-z-]+$")]
KioskPath = Annotated[str, Path(max_length=32, pattern=r"^[0-9A-Za-z-]+$")]
MonthQuery = Annotated[str | None, Query(max_length=7)]
MonthPath = Annotated[str, Path(pattern=monthly.MONTH_PATTERN)]
DayQuery = Annotated[str | None, Query(max_length=10)]
Fmt = Literal["csv", "xlsx", "json"]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _today(st: AppState) -> datetime:
    return datetime.fromtimestamp(st.clock(), ZoneInfo(st.config.timezone))


def _ctx(v: Viewer, lsp_id: str, **more: object) -> dict[str, Any]:
    q = f"?lsp={lsp_id}" if v.user.is_doitc else ""
    return {"user": v.user, "csrf": v.csrf, "lsp_id": lsp_id, "lsp_q": q, **more}


@router.get("")
def kiosks_page(v: ViewerDep, st: StateDep, lsp: LspQuery = None) -> Response:
    lsp_id = lsp_of(v, lsp)
    with read(st.engine) as conn:
        states = network.kiosk_states(conn, st.config, st.now_ms(), lsp_id=lsp_id)
    today = _today(st)
    return render.page(
        "lsp_kiosks.html",
        **_ctx(v, lsp_id, kiosks=states, month=today.strftime("%Y-%m"), day=today.date().isoformat()),
        config=st.config,
    )


@router.get("/kiosks/{kiosk_code}")
def kiosk_page(
    v: ViewerDep, st: StateDep, kiosk_code: KioskPath, lsp: LspQuery = None, month: MonthQuery = None
) -> Response:
    lsp_id = lsp_of(v, lsp)
    month = month or _today(st).strftime("%Y-%m")
    with read(st.engine) as conn:
        check_kiosk_of_lsp(conn, lsp_id, kiosk_code)
        state = network.kiosk_states(conn, st.config, st.now_ms(), kiosk_code=kiosk_code)[0]
        days = reports.kiosk_days(conn, lsp_id, kiosk_code, month, st.config.timezone, st.config.sla_hours)
    return render.page("kiosk.html", **_ctx(v, lsp_id, kiosk=state, days=days, month=month))


def _month(st: AppState, lsp_id: str, month: str) -> monthly.MonthlyReconciliation:
    with read(st.engine) as conn:
        return monthly.month_report(
            conn, lsp_id, month, tz=st.config.timezone, sla_hours=st.config.sla_hours, now_ms=st.now_ms()
        )


def _day(st: AppState, lsp_id: str, day: str) -> reconcile.Reconciliation:
    parsed = reconcile.parse_day(day)
    with read(st.engine) as conn:
        return reconcile.build(conn, lsp_id, parsed, st.config.timezone, st.config.sla_hours)


def _download(report: reports.Report, fmt: Fmt, stem: str) -> Response:
    if fmt == "json":
        return JSONResponse(report.model_dump(mode="json"))
    body: str | bytes = reports.to_csv(report) if fmt == "csv" else reports.to_xlsx(report)
    headers = {"Content-Disposition": f'attachment; filename="{stem}.{fmt}"', "Cache-Control": "no-store"}
    return Response(body, media_type=MEDIA[fmt], headers=headers)


@router.get("/month")
def month_page(v: ViewerDep, st: StateDep, lsp: LspQuery = None, month: MonthQuery = None) -> Response:
    lsp_id = lsp_of(v, lsp)
    month = month or _today(st).strftime("%Y-%m")
    report = _month(st, lsp_id, month)
    return render.page("report.html", **_ctx(v, lsp_id, report=report, kind="month", period=month))


@router.get("/month.{fmt}")
def month_download(
    v: ViewerDep, st: StateDep, fmt: Fmt, month: Annotated[str, Query(max_length=7)], lsp: LspQuery = None
) -> Response:
    lsp_id = lsp_of(v, lsp)
    return _download(_month(st, lsp_id, month), fmt, f"reconciliation-{lsp_id}-{month}")


@router.get("/day")
def day_page(v: ViewerDep, st: StateDep, lsp: LspQuery = None, date: DayQuery = None) -> Response:
    lsp_id = lsp_of(v, lsp)
    day = date or _today(st).date().isoformat()
    report = _day(st, lsp_id, day)
    return render.page("report.html", **_ctx(v, lsp_id, report=report, kind="day", period=day))


@router.get("/day.{fmt}")
def day_download(
    v: ViewerDep, st: StateDep, fmt: Fmt, date: Annotated[str, Query(max_length=10)], lsp: LspQuery = None
) -> Response:
    lsp_id = lsp_of(v, lsp)
    return _download(_day(st, lsp_id, date), fmt, f"reconciliation-{lsp_id}-{date}")


@router.get("/lookups")
def lookups_page(v: ViewerDep, st: StateDep, lsp: LspQuery = None) -> Response:
    lsp_id = lsp_of(v, lsp)
    with read(st.engine) as conn:
        rows = audit.lookups(conn, lsp_id)
    return render.page("lookups.html", **_ctx(v, lsp_id, lookups=rows))


@router.get("/statements")
def statements_page(v: ViewerDep, st: StateDep, lsp: LspQuery = None) -> Response:
    lsp_id = lsp_of(v, lsp)
    with read(st.engine) as conn:
        issued = [statements.stored(conn, lsp_id, m) for m, _at in statements.issued_months(conn, lsp_id)]
    docs = [(i, json.loads(i.document)["statement"]) for i in issued]
    return render.page("statements.html", **_ctx(v, lsp_id, statements=docs))


@router.get("/statements/{month}.json")
def statement_download(v: ViewerDep, st: StateDep, month: MonthPath, lsp: LspQuery = None) -> Response:
    """The signed file, byte for byte as issued (``kiosk-server statement verify`` checks it)."""
    lsp_id = lsp_of(v, lsp)
    with read(st.engine) as conn:
        issued = statements.stored(conn, lsp_id, month)
    headers = {
        "Content-Disposition": f'attachment; filename="statement-{lsp_id}-{issued.month}.json"',
        "Cache-Control": "no-store",
    }
    return Response(issued.document, media_type="application/json", headers=headers)


def _people(v: Viewer) -> None:
    if not v.user.manages_people:
        raise Forbidden("only an LSP admin adds people", code="forbidden")


@router.get("/users")
def users_page(v: ViewerDep, st: StateDep, lsp: LspQuery = None) -> Response:
    _people(v)
    lsp_id = lsp_of(v, lsp)
    with read(st.engine) as conn:
        people = users.list_users(conn, lsp_id)
    return render.page("lsp_users.html", **_ctx(v, lsp_id, people=people, min_password=users.MIN_PASSWORD))


def _add_viewer(st: AppState, v: Viewer, lsp_id: str, username: str, password: str) -> None:
    now = st.now_ms()
    with write(st.engine) as conn:
        new = users.add_user(conn, username, password, users.LSP_VIEWER, lsp_id, now)
        audit.record(conn, v.user.actor(), audit.USER_ADD, new.username, now, f"role {new.role}", lsp_id)


@router.post("/users")
async def add_viewer(request: Request, st: StateDep, lsp: LspQuery = None) -> Response:
    """An LSP admin adds a viewer (its staff) to its own LSP; audited."""
    v, fields = await checked_form(request, st)
    _people(v)
    lsp_id = lsp_of(v, lsp)
    await run_in_threadpool(
        _add_viewer, st, v, lsp_id, fields.get("username", "")[:64], fields.get("password", "")[:256]
    )
    back = "/console/lsp/users" + (f"?lsp={lsp_id}" if v.user.is_doitc else "")
    return RedirectResponse(back, status_code=303)
