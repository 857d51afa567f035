"""What an LSP calls with its API key: the daily and monthly reconciliation of its kiosks, and its
signed monthly commission statements."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from server_stub import monthly, reconcile, statements
from server_stub.auth import check_kiosk_of_lsp
from server_stub.db import read
from server_stub.errors import Forbidden
from server_stub.routes.deps import COMMON, LspDep, StateDep, error_doc
from sync.wire.protocol import Reconciliation

router = APIRouter(tags=["lsp"])

Code = Annotated[str | None, Query(max_length=32, pattern=r"^[0-9A-Za-z-]+$")]


@router.get(
    "/v1/reconciliation",
    responses={
        200: {
            "model": Reconciliation,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with `format=csv` or `Accept: text/csv`",
        },
        **COMMON,
        401: error_doc("missing or wrong API key"),
        403: error_doc("the kiosk or LSP is not yours"),
        404: error_doc("no such kiosk"),
    },
)
def get_reconciliation(
    request: Request,
    caller: LspDep,
    st: StateDep,
    date: Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (IST)")],
    kiosk_code: Code = None,
    lsp_id: Annotated[
        str | None, Query(max_length=32, pattern=r"^[0-9A-Za-z-]+$", description="your own LSP id")
    ] = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Response:
    if lsp_id is not None and lsp_id != caller:
        raise Forbidden("you may only read your own LSP's reconciliation", code="forbidden")
    day = reconcile.parse_day(date)
    with read(st.engine) as conn:
        if kiosk_code:
            check_kiosk_of_lsp(conn, caller, kiosk_code)
        report = reconcile.build(conn, caller, day, st.config.timezone, st.config.sla_hours, kiosk_code)
    if _wants_csv(request, format):
        return PlainTextResponse(reconcile.to_csv(report), media_type="text/csv")
    return JSONResponse(report.model_dump(mode="json"))


@router.get(
    "/v1/reconciliation/monthly",
    responses={
        200: {
            "model": monthly.MonthlyReconciliation,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with `format=csv` or `Accept: text/csv`",
        },
        **COMMON,
        401: error_doc("missing or wrong API key"),
        403: error_doc("the kiosk or LSP is not yours"),
        404: error_doc("no such kiosk"),
    },
)
def get_monthly_reconciliation(
    request: Request,
    caller: LspDep,
    st: StateDep,
    month: Annotated[str, Query(pattern=monthly.MONTH_PATTERN, description="YYYY-MM (IST)")],
    kiosk_code: Code = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Response:
    parsed = monthly.parse_month(month)
    with read(st.engine) as conn:
        if kiosk_code:
            check_kiosk_of_lsp(conn, caller, kiosk_code)
        report = monthly.month_report(
            conn,
            caller,
            parsed,
            tz=st.config.timezone,
            sla_hours=st.config.sla_hours,
            now_ms=st.now_ms(),
            kiosk_code=kiosk_code,
        )
    if _wants_csv(request, format):
        return PlainTextResponse(monthly.to_csv(report), media_type="text/csv")
    return JSONResponse(report.model_dump(mode="json"))


def _wants_csv(request: Request, format: str | None) -> bool:
    return format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))


@router.get(
    "/v1/statements",
    responses={**COMMON, 401: error_doc("missing or wrong API key")},
    description="The months for which a commission statement was issued to the caller, newest first.",
)
def list_statements(caller: LspDep, st: StateDep) -> JSONResponse:
    with read(st.engine) as conn:
        months = statements.issued_months(conn, caller)
    return JSONResponse({"lsp_id": caller, "statements": [{"month": m, "issued_at": t} for m, t in months]})


@router.get(
    "/v1/statements/{month}",
    responses={
        200: {"content": {"application/json": {}}, "description": "the signed statement file, as issued"},
        **COMMON,
        401: error_doc("missing or wrong API key"),
        404: error_doc("no statement issued for that month"),
    },
)
def get_statement(
    caller: LspDep,
    st: StateDep,
    month: Annotated[str, Path(pattern=monthly.MONTH_PATTERN, description="YYYY-MM (IST)")],
) -> Response:
    with read(st.engine) as conn:
        issued = statements.stored(conn, caller, month)
    filename = f"statement-{caller}-{issued.month}.json"
    return Response(
        issued.document,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
