"""The local API's routers: ``meta`` (health, the operator page), ``kiosk`` (status, catalog),
``transactions`` (new, list, show, void, reprint). A new endpoint goes in one of them."""

from agent.api.routes import kiosk, meta, transactions

ROUTERS = (meta.router, kiosk.router, transactions.router)

__all__ = ["ROUTERS"]
