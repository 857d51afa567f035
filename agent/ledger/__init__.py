"""The encrypted, append-only, signed ledger (DESIGN section 3)."""

from agent.ledger.ledger import Ledger, record_from_row
from agent.ledger.setup import InitResult, init_ledger, open_ledger
from agent.ledger.verify import VerifyResult, verify

__all__ = ["InitResult", "Ledger", "VerifyResult", "init_ledger", "open_ledger", "record_from_row", "verify"]
