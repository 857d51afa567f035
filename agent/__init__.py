"""The kiosk side: config, ledger, tokens, catalog, sync glue, printing, the
local API and the `kiosk-agent` CLI. Nothing else imports `agent` (DESIGN
section 2); its entry points are the CLI and these packages and modules.
``sales`` is the one new-transaction flow (and the void rules) the CLI, the local
API and the runner share."""

__all__ = ["api", "catalog", "cli", "config", "errors", "ledger", "runner", "sales", "transactions"]
