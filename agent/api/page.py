"""The operator page: server-rendered (Jinja2, autoescaped), Hindi or English (every word from
:mod:`agent.i18n`; the script gets the same table and never shows a code or state word).

The API token is embedded in the page, so the page is served only to loopback
clients under a loopback Host (checked by the guard) and never cached or framed.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse

from agent import i18n
from agent.catalog import Catalog, Field, Service
from hardware import format_rupees  # "₹ 1,62,600.00": Indian grouping (without the receipt stack)

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _field(f: Field, lang: str) -> dict[str, Any]:
    return {
        "name": f.name,
        "label": f.label_hi if lang == "hi" else f.label_en,
        "example": f.example,
        "required": f.required,
        "choices": [
            {"value": c.value, "label": c.label_hi if lang == "hi" else c.label_en} for c in f.choices
        ],
    }


def _service(s: Service, lang: str) -> dict[str, Any]:
    return {
        "code": s.code,
        "name": s.name_hi if lang == "hi" else s.name_en,
        "fee": format_rupees(s.fee_paise),
        "fee_paise": s.fee_paise,
        "fee_only": s.fee_only,
        "online_only": s.online_only,
        "mobile": s.mobile,
        "aadhaar": s.aadhaar,
        "fields": [_field(f, lang) for f in s.fields],
    }


def context(cat: Catalog, lang: str) -> dict[str, Any]:
    lang = lang if lang in i18n.LANGS else "en"
    services = [_service(s, lang) for s in cat.services]
    keys = ("name", "fee_paise", "fee_only", "mobile", "aadhaar", "online_only")
    data = {
        "lang": lang,
        "t": i18n.table(lang),
        "services": {s["code"]: {k: s[k] for k in keys} for s in services},
    }
    t = i18n.table(lang)
    return {
        "lang": lang,
        "other": "en" if lang == "hi" else "hi",
        "t": t["ui"],
        "states": t["states"],
        "services": services,
        # no "<" at all, so nothing in the catalog can end the data block early
        "page_data": json.dumps(data, ensure_ascii=False).replace("<", "\\u003c"),
    }


def render(cat: Catalog, *, lang: str, token: str) -> HTMLResponse:
    html = _env().get_template("index.html").render(**context(cat, lang), token=token)
    return HTMLResponse(html, headers=HEADERS)
