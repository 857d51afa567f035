"""What every console page reads: the signed-in person (from the session cookie), the LSP a page
may show them, the posted form with its CSRF token checked, and cookie settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from server_stub.console import sessions
from server_stub.console.users import User
from server_stub.db import read
from server_stub.errors import BadRequest, Forbidden
from server_stub.routes.deps import AppState, StateDep

MAX_FIELD = 20_000  # a pasted catalog is the largest field


@dataclass(frozen=True)
class Viewer:
    user: User
    csrf: str


def _viewer(request: Request, st: AppState) -> Viewer:
    token = request.cookies.get(sessions.SESSION_COOKIE)
    with read(st.engine) as conn:
        found = sessions.lookup(conn, token, st.now_ms())
    if found is None:
        raise HTTPException(303, "sign in first", headers={"Location": "/console/login"})
    return Viewer(*found)


def viewer(request: Request, st: StateDep) -> Viewer:
    """The signed-in person, or a redirect to the sign-in page."""
    return _viewer(request, st)


def doitc(v: Annotated[Viewer, Depends(viewer)]) -> Viewer:
    if not v.user.is_doitc:
        raise Forbidden("this page is for DOIT&C administrators", code="forbidden")
    return v


ViewerDep = Annotated[Viewer, Depends(viewer)]
DoitcDep = Annotated[Viewer, Depends(doitc)]


def lsp_of(v: Viewer, asked: str | None) -> str:
    """The LSP a page shows: an LSP user's own (asking for another is refused), or the one a
    DOIT&C admin asked for."""
    if v.user.is_doitc:
        if not asked:
            raise BadRequest("choose an LSP (lsp=ID)", code="lsp_required")
        return asked
    if asked and asked != v.user.lsp_id:
        raise Forbidden("you may only see your own LSP", code="forbidden")
    assert v.user.lsp_id is not None
    return v.user.lsp_id


async def form(request: Request) -> dict[str, str]:
    """The urlencoded body (last value of each field); fields longer than MAX_FIELD are refused."""
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
    if any(len(v) > MAX_FIELD for v in fields.values()):
        raise BadRequest("a form field is too long", code="field_too_long")
    return fields


async def checked_form(request: Request, st: AppState) -> tuple[Viewer, dict[str, str]]:
    """The viewer and the form of a signed-in post, its CSRF token checked first."""
    v = await run_in_threadpool(_viewer, request, st)
    fields = await form(request)
    sessions.check_csrf(v.csrf, fields.get("csrf"))
    return v, fields


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=sessions.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or request.app.state.kiosk.config.cookie_secure == "always",
    )
