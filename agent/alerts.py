"""The status `alerts` list, one home for the CLI's `status` and the local API's /api/status (a
plain module: `status` must not import the web stack to build it)."""

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


__all__ = ["alerts"]
