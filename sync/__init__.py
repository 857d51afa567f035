"""The sync protocol, shared by kiosk and server: the canonical record encoding
and its signature, request signing, wire models, the kiosk's HTTP client and
the sync engine. Never imports `agent` or `server_stub`."""

__all__ = [
    "canonical",
    "client",
    "commission",
    "engine",
    "errors",
    "outbox",
    "protocol",
    "sealing",
    "signing",
    "verhoeff",
]
