"""Signed, chained batches from devices: load what the server holds, classify each record
(chain checks, then the business rules of :mod:`server_stub.ingest.rules`), write."""

from server_stub.ingest.batch import ingest_batch, receive
from server_stub.ingest.rules import RULES, Rule
from server_stub.ingest.state import Trust

__all__ = ["RULES", "Rule", "Trust", "ingest_batch", "receive"]
