"""Wire models of the sync protocol (HTTP+JSON under /v1), shared by agent and server.

Money is integer paise, times are integer milliseconds since the Unix epoch (UTC)
unless a field says otherwise. Records travel without ``prev_hash`` and ``hash``:
a batch carries the hash of the record before its first record once, and the
server recomputes every hash with :mod:`sync.wire.canonical`.

Statuses of a record in a batch ack:

- ``accepted``: stored now (``final_token`` set when the record carried a provisional token).
- ``duplicate``: the server already holds this seq with the same hash (idempotent resend);
  ``final_token`` is repeated for provisional records.
- ``rejected`` with a ``reason``:
  ``gap`` (records before it are missing: resend from ``head.seq + 1``),
  ``blocked`` (an earlier record of this batch was rejected),
  ``fork`` (the server holds another record at this seq or the chain diverged earlier; the record
  is quarantined, nothing is lost, and the device is flagged),
  ``bad_signature``, ``token_not_leased``, ``token_used``, ``bad_token``, ``bad_provisional_token``,
  ``missing_token``, ``bad_void``, ``bad_record``, and the checks against the server's own data:
  ``unknown_service`` (not in the catalog version the record names), ``catalog_not_in_force`` (that
  version was replaced longer ago than the server's grace period, or never existed),
  ``fee_mismatch`` (``fee_paise`` is not that version's fee), ``amount_over_limit`` (above the
  service's ``max_amount_paise``), ``time_implausible`` (``created_at`` further ahead of the
  server's receive time than its margin, or before the device enrolled for a token it could only
  have after enrolling).
  Only ``gap`` and ``blocked`` are transient.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

# JSON-safe integer bounds (no value outside 0..2**53-1 is meaningful here).
MAX_INT = 2**53 - 1
MAX_BATCH_RECORDS = 1000
# Why the server refused a record. One list, used by the server that says it and the kiosk that shows it.
RejectReason = Literal[
    "gap",
    "blocked",
    "fork",
    "bad_signature",
    "token_not_leased",
    "token_used",
    "bad_token",
    "bad_provisional_token",
    "missing_token",
    "bad_void",
    "bad_record",
    "unknown_service",
    "catalog_not_in_force",
    "fee_mismatch",
    "amount_over_limit",
    "time_implausible",
]
REJECT_REASONS: frozenset[str] = frozenset(RejectReason.__args__)  # type: ignore[attr-defined]
TRANSIENT_REASONS = frozenset({"gap", "blocked"})

NonNegInt = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
PosInt = Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
HexHash = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
B64 = Annotated[StrictStr, Field(min_length=1, max_length=4096, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]
# Printable text without control characters (PostgreSQL text can't hold NUL anyway).
Text = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
DeviceId = Annotated[
    StrictStr, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
]
RecordStatus = Literal["accepted", "duplicate", "rejected"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every 4xx answer: a machine-readable ``error`` code and a sentence for a person."""

    error: str
    detail: str


# --- enrollment and leases ----------------------------------------------------------------------


class Lease(_Model):
    """Serials ``start_serial`` <= s < ``end_serial`` belong to this device; ``sig`` is the server's
    Ed25519 signature over :func:`sync.wire.signing.lease_signing_bytes`."""

    lease_id: PosInt
    start_serial: PosInt
    end_serial: PosInt
    sig: StrictStr


class EnrollRequest(_Model):
    enrollment_code: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    device_public_key: Annotated[
        StrictStr,
        Field(pattern=r"^[A-Za-z0-9+/]{43}=$", description="raw Ed25519 public key (32 bytes), base64"),
    ]
    device_id: Annotated[DeviceId, Field(description="client-generated UUID")]


class EnrollResponse(_Model):
    device_id: str
    kiosk_code: str
    lsp_id: str
    server_sign_public_key: str = Field(description="Ed25519, raw, base64: verifies leases")
    server_seal_public_key: str = Field(description="X25519, raw, base64: for sync.wire.sealing.seal")
    leases: list[Lease]
    catalog_version: int
    server_time_ms: int


RequestId = Annotated[StrictStr, Field(min_length=8, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]


class LeaseRequest(_Model):
    count: Annotated[StrictInt, Field(ge=1, le=16)] = 1
    request_id: RequestId | None = Field(
        default=None,
        description="idempotency key: the same id from the same device gets the same leases again",
    )


class LeaseResponse(_Model):
    block_size: int
    leases: list[Lease]


# --- batches ------------------------------------------------------------------------------------


class WireRecord(_Model):
    """A ledger record as it travels: every canonical key except ``prev_hash``, plus ``sig``."""

    seq: PosInt
    txn_id: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]
    kind: Literal["sale", "void"]
    created_at: NonNegInt
    operator: Text | None = None
    service: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    amount_paise: NonNegInt = 0
    fee_paise: NonNegInt = 0
    token: Annotated[StrictStr, Field(min_length=1, max_length=80, pattern=r"^[0-9A-Za-z-]+$")] | None = None
    fields: (
        dict[Annotated[StrictStr, Field(max_length=64)], Annotated[StrictStr, Field(max_length=500)]] | None
    ) = Field(default=None, max_length=50)
    mobile: Annotated[StrictStr, Field(max_length=20)] | None = None
    aadhaar_last4: Annotated[StrictStr, Field(max_length=4)] | None = None
    aadhaar_sealed: Annotated[StrictStr, Field(max_length=1024)] | None = None
    voids_seq: PosInt | None = None
    reason: Annotated[StrictStr, Field(max_length=500)] | None = None
    catalog_version: NonNegInt | None = None
    sig: B64

    def record(self) -> dict[str, Any]:
        """The canonical record without prev_hash (absent values left out). Its ``fields`` is the
        model's own dict: read it, don't change it (read from the fields directly, ~2 us a record
        where ``model_dump`` took ~4)."""
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "sig"}


class BatchRequest(_Model):
    prev_hash: Annotated[HexHash, Field(description="hash of the record before records[0]")]
    records: Annotated[list[WireRecord], Field(min_length=1, max_length=MAX_BATCH_RECORDS)]


class Head(_Model):
    """The last record the server holds for a device (seq 0 and the genesis hash when none)."""

    seq: int
    hash: str


class RecordAck(_Model):
    seq: int
    status: RecordStatus
    reason: RejectReason | None = None
    final_token: str | None = None


class BatchResponse(_Model):
    acks: list[RecordAck]
    head: Head
    flagged: bool = Field(description="the device is flagged (a fork was seen)")


# --- catalog, heartbeat, tokens -----------------------------------------------------------------


class CatalogField(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: StrictStr
    required: bool = False
    pattern: str | None = None


class CatalogService(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    fee_paise: NonNegInt
    max_amount_paise: NonNegInt
    online_only: bool
    commission: dict[str, Any]
    fields: list[CatalogField] = []


class Catalog(BaseModel):
    """A catalog version. Never empty: a kiosk given no services could serve no one (the server
    refuses to load one and a kiosk refuses to read one)."""

    model_config = ConfigDict(extra="allow")
    version: PosInt
    services: Annotated[list[CatalogService], Field(min_length=1)]


class CatalogResponse(_Model):
    version: int = Field(description="the newest catalog version on the server")
    catalog: Catalog | None = Field(description="null when the caller's `since` is already current")


class HeartbeatRequest(_Model):
    head_seq: NonNegInt
    head_hash: HexHash | None = None
    queue_depth: NonNegInt = 0
    hardware: dict[Annotated[StrictStr, Field(max_length=32)], Annotated[StrictStr, Field(max_length=64)]] = (
        Field(default_factory=dict, max_length=16)
    )
    agent_version: Annotated[StrictStr, Field(max_length=32)] | None = None


class HeartbeatResponse(_Model):
    server_time_ms: int
    head: Head
    catalog_version: int
    flagged: bool
    messages: list[str]


class TokenStatus(_Model):
    """Follow-up of a token from any kiosk: every enrolled device learns what a citizen's follow-up
    needs (status, service, IST date, issuing K-code); ``created_at``, ``amount_paise`` and
    ``fields`` only reach devices of the issuing kiosk's LSP (``detail`` says which answer this is).
    Never a mobile or Aadhaar reference."""

    token: str
    status: Literal["synced", "voided", "unknown"]
    detail: Literal["full", "summary", "none"] = "none"
    kiosk_code: str | None = None
    service: str | None = None
    kind: str | None = None
    date: str | None = Field(default=None, description="the IST day it was made, YYYY-MM-DD")
    created_at: int | None = None
    amount_paise: int | None = None
    fields: dict[str, str] | None = None
    final_token: str | None = Field(default=None, description="for a provisional token: its final token")
    provisional_token: str | None = Field(default=None, description="for a final token: the provisional one")


# --- reconciliation -----------------------------------------------------------------------------


class ReconRow(_Model):
    count: int = Field(description="sales created that day")
    gross_paise: int = Field(description="sale amounts less voided amounts")
    fee_paise: int
    commission_paise: int
    voids: int
    late_syncs: int = Field(description="records received more than the SLA hours after creation")
    gaps: int = Field(description="seqs the kiosk has shown it holds but the server has not received")
    forks: int
    rejected: int = Field(default=0, description="records refused for a business rule (kept, not counted)")
    clock_suspect: int = Field(
        default=0,
        description="accepted records whose created_at looks wrong: earlier than the record before "
        "it, or ahead of the server's receive time (within the margin)",
    )
    days_without_heartbeat: int


class KioskRecon(ReconRow):
    kiosk_code: str
    name: str
    flagged: bool


class Reconciliation(_Model):
    lsp_id: str
    date: str
    timezone: str
    sla_hours: int
    kiosks: list[KioskRecon]
    totals: ReconRow


class Health(_Model):
    status: Literal["ok"]
