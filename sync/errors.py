"""Sync errors: the engine branches on transient vs permanent and nothing else."""

from __future__ import annotations


class SyncError(Exception):
    transient = False

    def __init__(
        self, message: str, *, code: str = "error", retry_after_s: float | None = None, left: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s
        #: False when the request never left this machine (no connection was made): the records
        #: it carried were not sent, and the outbox says so.
        self.left = left


class TransientSyncError(SyncError):
    """Try again later: no connection, timeout, 5xx, 429, clock skew being corrected."""

    transient = True


class PermanentSyncError(SyncError):
    """Retrying won't help until something changes: revoked device, bad request, wrong enrollment code."""
