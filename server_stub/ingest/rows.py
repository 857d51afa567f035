"""The rows a batch writes, typed, and how each is built from a record and its chain link."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from server_stub.auth import Device
from sync.wire.canonical import ChainLink
from sync.wire.protocol import RejectReason, WireRecord


class RecordRow(TypedDict):
    device_id: str
    kiosk_code: str
    seq: int
    hash: str
    txn_id: str
    kind: str
    created_at: int
    received_at: int
    service: str
    amount_paise: int
    fee_paise: int
    token: str | None
    final_token: str | None
    voids_seq: int | None
    catalog_version: int | None
    sig: str
    body: bytes
    clock_suspect: bool


class TokenRow(TypedDict):
    token: str
    device_id: str
    seq: int
    kind: str  # leased | provisional | final


class QuarantineRow(TypedDict):
    device_id: str
    kiosk_code: str
    seq: int
    hash: str
    reason: str
    created_at: int
    received_at: int
    sig: str
    body: bytes


class GapRow(TypedDict):
    device_id: str
    seq: int
    kiosk_code: str
    created_at: int
    first_seen_at: int


@dataclass
class Rows:
    """What the batch will write, in the order the records came."""

    records: list[RecordRow] = field(default_factory=list)
    tokens: list[TokenRow] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    gaps: list[GapRow] = field(default_factory=list)


def record_row(
    device: Device, rec: WireRecord, link: ChainLink, final_token: str | None, now_ms: int
) -> RecordRow:
    return {
        "device_id": device.device_id,
        "kiosk_code": device.kiosk_code,
        "seq": rec.seq,
        "hash": link.hash,
        "txn_id": rec.txn_id,
        "kind": rec.kind,
        "created_at": rec.created_at,
        "received_at": now_ms,
        "service": rec.service,
        "amount_paise": rec.amount_paise,
        "fee_paise": rec.fee_paise,
        "token": rec.token,
        "final_token": final_token,
        "voids_seq": rec.voids_seq,
        "catalog_version": rec.catalog_version,
        "sig": rec.sig,
        "body": link.body,
        "clock_suspect": False,
    }


def quarantine_row(
    device: Device, rec: WireRecord, link: ChainLink, reason: RejectReason, now_ms: int
) -> QuarantineRow:
    return {
        "device_id": device.device_id,
        "kiosk_code": device.kiosk_code,
        "seq": rec.seq,
        "hash": link.hash,
        "reason": reason,
        "created_at": rec.created_at,
        "received_at": now_ms,
        "sig": rec.sig,
        "body": link.body,
    }


def gap_row(device: Device, rec: WireRecord, now_ms: int) -> GapRow:
    return {
        "device_id": device.device_id,
        "seq": rec.seq,
        "kiosk_code": device.kiosk_code,
        "created_at": rec.created_at,
        "first_seen_at": now_ms,
    }
