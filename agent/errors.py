"""The agent's errors. Each carries the CLI exit code and a message in the
operator's words (never PII). Transient errors may succeed on retry; permanent
ones will not until something changes."""

from __future__ import annotations


class AgentError(Exception):
    """Base: a clear one-line message and the CLI exit code."""

    exit_code = 2
    transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AgentError):
    """The configuration file is missing, unreadable or invalid."""


class InvalidInput(AgentError):
    """What the operator typed can't be accepted; nothing was written."""


class IdempotencyKeyReused(InvalidInput):
    """The local API's Idempotency-Key came again with a different request; nothing was written."""


class NotInitialised(AgentError):
    """The data dir or ledger does not exist yet."""


class KeyUnavailable(AgentError):
    """The database key can't be found or is malformed."""


class WrongKey(AgentError):
    """The ledger does not open with this key; the file was not touched."""


class NotFound(AgentError):
    """No transaction with that token or id."""


class NeedsConnection(AgentError):
    """The service needs a live connection and the kiosk is offline."""


class LedgerCorrupt(AgentError):
    """verify found a broken chain or signature."""

    exit_code = 3


class ServerUnreachable(AgentError):
    """The central server can't be reached now; nothing is lost."""

    exit_code = 4
    transient = True


class LedgerStorageError(AgentError):
    """The ledger's file can't be read or written as it is (disk, damage, lost writes). The CLI
    exits 3 with the way out; the local API answers JSON 503/507, never a plain 500."""

    exit_code = 3


class DiskFull(LedgerStorageError):
    """The data dir's disk is (nearly) full: new sales are refused until space is freed."""

    transient = True


class LedgerIOError(LedgerStorageError):
    """The operating system could not read or write the ledger file (a failing disk, a lost USB
    drive, a permission change): not a wrong key, not damage that was seen."""

    transient = True


class LedgerDamaged(LedgerStorageError):
    """A page of the ledger fails its checks (integrity, SQLCipher's per-page HMAC)."""


class LedgerTooNew(LedgerStorageError):
    """The ledger's schema is newer than this agent knows (a newer kiosk-agent wrote it, then an
    older one was put back): writing with the old code could leave records that version does
    not expect, so it reads, verifies and backs up, but makes no new records."""


class LedgerBehind(LedgerStorageError):
    """The ledger holds less than was committed (lost WAL frames, an old copy put back), or the
    server holds more of this kiosk's chain than the ledger: issuing tokens now could reissue one."""
