"""The sync protocol. Two parts:

- :mod:`sync.wire`: what kiosk and server share (wire models, canonical encoding, signing,
  sealing, token formats). The server imports only this.
- the kiosk's side: :mod:`sync.client` (signed HTTP), :mod:`sync.engine` (push, pull, backoff),
  :mod:`sync.outbox` (the outbox protocol the ledger implements), :mod:`sync.errors`,
  :mod:`sync.memory` (``MemoryOutbox``: the protocol in memory, for driving the engine
  without a ledger).

Never imports `agent`, `hardware` or `server_stub`."""

__all__ = ["client", "engine", "errors", "memory", "outbox", "wire"]
