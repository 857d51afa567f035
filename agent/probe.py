"""Is the server reachable right now? A cheap, unsigned ``GET /healthz`` every ``EVERY_S`` with a
short timeout, so the operator page's online badge follows the link within seconds instead of
waiting for the next sync, and a link that comes back drains the queue at once (issue 14)."""

from __future__ import annotations

from collections.abc import Callable

import requests

from sync.client import SyncClient

EVERY_S = 2.0
TIMEOUT_S = 1.5


class LinkProbe:
    """``check()`` asks the server once and calls ``on_change(up)`` when the answer flips."""

    def __init__(
        self,
        base_url: str,
        on_change: Callable[[bool], None],
        *,
        session: requests.Session | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.client = SyncClient(base_url, session=session or requests.Session(), timeout_s=timeout_s)
        self.on_change = on_change
        self.up: bool | None = None

    def check(self) -> bool:
        up = self.client.healthy()
        if up != self.up:
            self.up = up
            self.on_change(up)
        return up

    def close(self) -> None:
        self.client.session.close()


__all__ = ["EVERY_S", "LinkProbe"]
