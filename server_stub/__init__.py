"""Central server of kiosk-agent: enrollment, token leases, signed ingest, reconciliation.

Run it with the ``kiosk-server`` CLI; embed it with :func:`create_app`. The web stack is
imported on first use, so the CLI's admin commands start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server_stub.config import ServerConfig
from server_stub.errors import ServerError

if TYPE_CHECKING:
    from server_stub.app import create_app

__all__ = ["ServerConfig", "ServerError", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server_stub.app import create_app

        return create_app
    raise AttributeError(f"module 'server_stub' has no attribute {name!r}")
