"""Templates (Jinja2, autoescaped) and the small formatting the pages share: times in the
server's timezone, paise as rupees, and the HTML answer."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.responses import HTMLResponse

HERE = Path(__file__).parent
# No script, no inline style, no framing; forms post only here.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def rupees_text(paise: int | None) -> str:
    if paise is None:
        return "-"
    sign = "-" if paise < 0 else ""
    paise = abs(paise)
    return f"{sign}{paise // 100:,}.{paise % 100:02d}"


def when_text(ms: int | None, tz: str = "Asia/Kolkata") -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


@lru_cache(maxsize=1)
def env() -> Any:
    import jinja2

    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    e.filters["rs"] = rupees_text
    e.filters["when"] = when_text
    return e


def page(name: str, status: int = 200, headers: dict[str, str] | None = None, **ctx: Any) -> HTMLResponse:
    html = env().get_template(name).render(**ctx)
    all_headers = {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        **(headers or {}),
    }
    return HTMLResponse(html, status_code=status, headers=all_headers)


_TITLES = {
    400: "Check the form",
    403: "Not allowed",
    404: "Not found",
    409: "Not done",
    422: "Check the form",
}


def error_page(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    """The console's answer to a refused request: what happened, in a page (same status)."""
    title = _TITLES.get(status, "Try again later" if status >= 429 else "Not done")
    return page(
        "error.html", status=status, headers=headers, code=code, detail=detail, title=title, user=None
    )
