"""Central server of kiosk-agent: enrollment, token leases, signed ingest, reconciliation.

Run it with the ``kiosk-server`` CLI; embed it with :func:`create_app`.
"""

from server_stub.app import create_app
from server_stub.config import ServerConfig
from server_stub.errors import ServerError

__all__ = ["ServerConfig", "ServerError", "create_app"]
