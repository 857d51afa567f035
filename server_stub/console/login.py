"""Sign in and out. The sign-in form carries a double-submit CSRF token; a wrong password is
counted against the user name and the address (:mod:`server_stub.console.users`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from server_stub.console import render, sessions, users
from server_stub.console.web import ViewerDep, checked_form, form, set_cookie
from server_stub.db import read, write
from server_stub.errors import RateLimited, ServerError
from server_stub.routes.deps import AppState, StateDep

router = APIRouter(prefix="/console", include_in_schema=False)


def _login_page(request: Request, message: str | None = None, status: int = 200, retry: int = 0) -> Response:
    token = sessions.new_login_token()
    headers = {"Retry-After": str(retry)} if retry else None
    resp = render.page("login.html", status=status, headers=headers, csrf=token, message=message, user=None)
    set_cookie(resp, request, sessions.LOGIN_CSRF_COOKIE, token, 3600)
    return resp


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


def _sign_in(st: AppState, username: str, password: str, address: str) -> str:
    """The new session's cookie, or RateLimited / Unauthorized."""
    limits = users.LoginLimits(st.counter, st.config.login_failures_per_user, st.config.login_failures_per_ip)
    now = st.clock()
    users.refuse_if_limited(limits, username, address, now)
    with read(st.engine) as conn:
        user = users.check_password(conn, username, password)  # argon2 runs outside any write lock
    if user is not None:
        with write(st.engine) as conn:
            return sessions.create(conn, user, int(now * 1000))
    users.count_failure(limits, username, address, now)
    raise AssertionError("count_failure always raises")  # pragma: no cover


@router.post("/login")
async def login(request: Request, st: StateDep) -> Response:
    fields = await form(request)
    sessions.check_csrf(request.cookies.get(sessions.LOGIN_CSRF_COOKIE), fields.get("csrf"))
    address = request.client.host if request.client else "-"
    try:
        token = await run_in_threadpool(
            _sign_in, st, fields.get("username", "")[:64], fields.get("password", "")[:256], address
        )
    except RateLimited as exc:
        return _login_page(request, exc.message, 429, exc.retry_after_s)
    except ServerError as exc:
        return _login_page(request, exc.message, exc.status)
    resp = RedirectResponse("/console/", status_code=303)
    set_cookie(resp, request, sessions.SESSION_COOKIE, token, sessions.SESSION_HOURS * 3600)
    resp.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path=sessions.COOKIE_PATH)
    return resp


@router.post("/logout")
async def logout(request: Request, st: StateDep) -> Response:
    await checked_form(request, st)

    def end() -> None:
        with write(st.engine) as conn:
            sessions.end(conn, request.cookies.get(sessions.SESSION_COOKIE))

    await run_in_threadpool(end)
    resp = RedirectResponse("/console/login", status_code=303)
    resp.delete_cookie(sessions.SESSION_COOKIE, path=sessions.COOKIE_PATH)
    return resp


@router.get("/")
def home(v: ViewerDep) -> Response:
    return RedirectResponse("/console/admin" if v.user.is_doitc else "/console/lsp", status_code=303)


@router.get("/static/console.css")
def stylesheet() -> Response:
    css = (render.HERE / "static" / "console.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})
