"""The encrypted, append-only, signed ledger (DESIGN section 3).

It owns every table: records, outbox, leases, meta, print jobs (``ledger.print_jobs``),
operators (``ledger.operators``) and the read models (``find``, ``recent``, ``status``).
No SQL is written outside this package.
"""

from agent.ledger import idempotency
from agent.ledger.access import LedgerAccess, LedgerProvider, as_provider
from agent.ledger.ledger import Draft, Ledger, MetaKey, Record, record_from_row
from agent.ledger.print_jobs import PrintJob
from agent.ledger.readmodel import LedgerStatus, OutboxCounts, TxnRow
from agent.ledger.setup import InitResult, init_ledger, open_ledger
from agent.ledger.verify import VerifyResult, verify

__all__ = [
    "Draft",
    "InitResult",
    "Ledger",
    "LedgerAccess",
    "LedgerProvider",
    "LedgerStatus",
    "MetaKey",
    "OutboxCounts",
    "PrintJob",
    "Record",
    "TxnRow",
    "VerifyResult",
    "as_provider",
    "idempotency",
    "init_ledger",
    "open_ledger",
    "record_from_row",
    "verify",
]
