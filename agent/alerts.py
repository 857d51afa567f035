"""The status `alerts` list, one home for the CLI's `status` and the local API's /api/status (a
plain module: `status` must not import the web stack to build it). Contract: ``{"code", "severity",
"detail"}``, detail holds numbers only. :func:`alerts` are the ledger's and the clock's (both
statuses); :func:`merged` adds what the running agent's status knows about its link (revoked, not
enrolled, few tokens) for /api/status, whose page shows them in red."""

from __future__ import annotations

from typing import Any

from agent import clock
from agent.config import Config
from agent.ledger import Ledger


def alerts(led: Ledger, cfg: Config) -> list[dict[str, Any]]:
    """What needs the operator: the ledger's (disk, damage, behind, server ahead) and the clock's."""
    out = list(led.alerts())
    wrong = clock.alert(led.clock.offset_s, cfg.settings.sync.clock_margin_s)
    if wrong is not None:
        out.append(wrong)
    return out


def _alert(code: str, severity: str, **detail: Any) -> dict[str, Any]:
    return {"code": code, "severity": severity, "detail": detail}


def link_alerts(doc: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if doc.get("sync_error_code") == "device_revoked":
        out.append(_alert("revoked", "error"))
    if not doc.get("kiosk_code"):
        out.append(_alert("not_enrolled", "error"))
    elif (doc.get("tokens_remaining") or 0) < cfg.settings.tokens.min_remaining:
        out.append(_alert("tokens_low", "warning", tokens_remaining=doc.get("tokens_remaining") or 0))
    return out


def merged(doc: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    """The ledger's alerts (if any) and ours, one per code."""
    seen: set[str] = set()
    out = []
    for a in [*doc.get("alerts", []), *link_alerts(doc, cfg)]:
        if a["code"] not in seen:
            seen.add(a["code"])
            out.append(a)
    return out


__all__ = ["alerts", "link_alerts", "merged"]
