"""What the local API's routers read from ``app.state.kiosk``: the ledger access, the config
and the hooks the runner (or a test) gives it. Built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from agent.config import Config
from agent.ledger import LedgerProvider
from agent.transactions import TxnView

if TYPE_CHECKING:
    from hardware import Printer


@dataclass(frozen=True)
class ApiState:
    """The callables are called outside the ledger lock: they may do network or device I/O.

    ``on_commit`` is the new-transaction flow's sync nudge; ``printer`` the printer the flow
    prints on (None: the configured one, opened per job); ``reprint`` None answers 501;
    ``enqueue_print`` the print worker's queue for a new sale's receipt (None: printed inline).
    """

    access: LedgerProvider
    cfg: Config
    token: str
    now: Callable[[], int]
    online: Callable[[], bool]
    status_extra: Callable[[], dict[str, Any]] | None = None
    remote_lookup: Callable[[str], dict[str, Any] | None] | None = None
    reprint: Callable[[str], Any] | None = None
    on_commit: Callable[[TxnView], None] | None = None
    printer: Printer | None = None
    enqueue_print: Callable[[int], Any] | None = None


async def _kiosk(request: Request) -> ApiState:  # async: no threadpool hop to read a field
    state: ApiState = request.app.state.kiosk
    return state


#: A route's parameter: ``kiosk: Kiosk``.
Kiosk = Annotated[ApiState, Depends(_kiosk)]
