"""The local API's routers: ``meta`` (health, the operator page), ``kiosk`` (status, catalog),
``transactions`` (new, list, show, void, reprint), ``followup`` (token lookup, receipt check,
day summary). A new endpoint goes in one of them."""

from agent.api.routes import followup, kiosk, meta, transactions

ROUTERS = (meta.router, kiosk.router, transactions.router, followup.router)

__all__ = ["ROUTERS"]
