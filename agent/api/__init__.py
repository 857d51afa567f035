"""The local API and operator page (DESIGN section 9), served on loopback."""

from agent.api.access import LedgerAccess
from agent.api.app import create_app
from agent.api.server import ApiServer, bind, serve
from agent.api.token import load_or_create_token

__all__ = ["ApiServer", "LedgerAccess", "bind", "create_app", "load_or_create_token", "serve"]
