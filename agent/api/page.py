"""The operator page: server-rendered (Jinja2, autoescaped), Hindi or English.

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

from agent.catalog import Catalog
from agent.money import format_rupees

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

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "e-Mitra kiosk",
        "new": "New transaction",
        "service": "Service",
        "amount": "Amount (Rs)",
        "fee": "Fee",
        "mobile": "Mobile (optional)",
        "aadhaar": "Aadhaar",
        "submit": "Save and issue token",
        "queue": "Waiting to sync",
        "last_sync": "Last sync",
        "printer": "Printer",
        "tokens": "Tokens left",
        "recent": "Recent transactions",
        "rejected": "Needs attention (rejected by the server)",
        "token": "Token",
        "time": "Time",
        "sync": "Sync",
        "print": "Print",
        "reprint": "Reprint",
        "reason": "Reason",
        "online": "Online",
        "offline": "Offline",
        "unknown": "Unknown",
        "never": "never",
        "saved": "Saved. Token",
        "failed": "Not saved",
        "online_only": "needs a live connection",
        "switch": "हिन्दी",
    },
    "hi": {
        "title": "ई-मित्र कियोस्क",
        "new": "नया लेन-देन",
        "service": "सेवा",
        "amount": "राशि (रु)",
        "fee": "शुल्क",
        "mobile": "मोबाइल (वैकल्पिक)",
        "aadhaar": "आधार",
        "submit": "सहेजें और टोकन दें",
        "queue": "सिंक के लिए बाकी",
        "last_sync": "पिछला सिंक",
        "printer": "प्रिंटर",
        "tokens": "बचे टोकन",
        "recent": "हाल के लेन-देन",
        "rejected": "ध्यान दें (सर्वर ने अस्वीकार किया)",
        "token": "टोकन",
        "time": "समय",
        "sync": "सिंक",
        "print": "प्रिंट",
        "reprint": "फिर से प्रिंट",
        "reason": "कारण",
        "online": "ऑनलाइन",
        "offline": "ऑफ़लाइन",
        "unknown": "अज्ञात",
        "never": "कभी नहीं",
        "saved": "सहेजा गया। टोकन",
        "failed": "सहेजा नहीं गया",
        "online_only": "इंटरनेट चाहिए",
        "switch": "English",
    },
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


def context(cat: Catalog, lang: str) -> dict[str, Any]:
    lang = lang if lang in STRINGS else "en"
    services = []
    for s in cat.services:
        services.append(
            {
                "code": s.code,
                "name": s.name_hi if lang == "hi" else s.name_en,
                "fee": format_rupees(s.fee_paise),
                "online_only": s.online_only,
                "mobile": s.mobile,
                "aadhaar": s.aadhaar,
                "fields": [
                    {
                        "name": f.name,
                        "label": f.label_hi if lang == "hi" else f.label_en,
                        "example": f.example,
                        "required": f.required,
                    }
                    for f in s.fields
                ],
            }
        )
    data = {
        "lang": lang,
        "strings": STRINGS[lang],
        "services": {
            s["code"]: {k: s[k] for k in ("fee", "mobile", "aadhaar", "online_only")} for s in services
        },
    }
    return {
        "lang": lang,
        "other": "en" if lang == "hi" else "hi",
        "t": STRINGS[lang],
        "services": services,
        # no "<" at all, so nothing in the catalog can end the data block early
        "page_data": json.dumps(data, ensure_ascii=False).replace("<", "\\u003c"),
    }


def render(cat: Catalog, *, lang: str, token: str) -> HTMLResponse:
    html = _env().get_template("index.html").render(**context(cat, lang), token=token)
    return HTMLResponse(html, headers=HEADERS)
