"""The HTTP routes, one router per caller: kiosks (:mod:`.device`), LSPs (:mod:`.lsp`) and ops
(:mod:`.health`). Each reads the app's state through :mod:`.deps`. A new endpoint is a function
in the router of its caller (a new kind of caller: a module here and a line in ``ROUTERS``)."""

from fastapi import APIRouter

from server_stub.routes import device, health, lsp
from server_stub.routes.deps import AppState

ROUTERS: tuple[APIRouter, ...] = (health.router, device.router, lsp.router)

__all__ = ["ROUTERS", "AppState", "handlers"]
