"""The local API and operator page (DESIGN section 9), served on loopback."""

from agent.api.app import create_app
from agent.api.server import ApiServer, bind, serve
from agent.api.token import load_or_create_token
from agent.ledger import LedgerAccess

__all__ = ["ApiServer", "LedgerAccess", "bind", "create_app", "load_or_create_token", "serve"]
