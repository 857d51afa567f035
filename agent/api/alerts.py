"""The status alerts the page shows in red (contract: ``{"code", "severity", "detail"}``, detail
holds numbers only): the ones the agent's status already knows (revoked, not enrolled, few tokens),
added to any the ledger reports."""

from __future__ import annotations

from typing import Any

from agent.config import Config


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


__all__ = ["link_alerts", "merged"]
