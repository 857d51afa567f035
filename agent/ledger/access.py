"""One ledger, one lock: every thread that touches the ledger's connection goes through here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from agent.ledger.db import DatabaseError, is_storage
from agent.ledger.ledger import Ledger

#: What the flows are given: call it, and hold what it yields only for ledger calls.
LedgerProvider = Callable[[], AbstractContextManager[Ledger]]


class LedgerAccess:
    """Serialises use of one open :class:`Ledger` across threads.

    ``run`` makes one and hands it to the local API and to the scheduler's jobs,
    so the API's threadpool, sync and backups never use the connection at once.
    Hold it only for ledger calls: never across network or device I/O.
    """

    def __init__(self, ledger: Ledger, lock: threading.Lock | threading.RLock | None = None) -> None:
        self.ledger = ledger
        self.lock = lock if lock is not None else threading.RLock()

    @contextmanager
    def __call__(self) -> Iterator[Ledger]:
        with self.lock:
            try:
                yield self.ledger
            except DatabaseError as exc:
                if not is_storage(exc):
                    raise
                raise self.ledger.translate(exc) from None  # disk full, damage, I/O: named


def as_provider(ledger: Ledger | LedgerProvider) -> LedgerProvider:
    """A bare Ledger (the CLI, one thread) gets a private lock; a provider is used as it is."""
    return LedgerAccess(ledger) if isinstance(ledger, Ledger) else ledger
