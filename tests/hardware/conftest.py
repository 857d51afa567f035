from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hardware.receipt import ReceiptData


@pytest.fixture(scope="session")
def device_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def make_receipt(**changes: object) -> ReceiptData:
    fields: dict[str, object] = dict(
        kiosk_code="K-0042",
        token="A-017",
        seq=1234,
        service_en="Birth certificate",
        service_hi="जन्म प्रमाण पत्र",
        amount_paise=150050,
        fee_paise=2000,
        created_at=datetime(2025, 11, 25, 8, 30, tzinfo=UTC),
        citizen_ref_masked="XXXX-XXXX-1234",
        hash_hex="0123456789abcdef" * 4,
        duplicate=False,
        lang="hi",
    )
    fields.update(changes)
    return ReceiptData(**fields)  # type: ignore[arg-type]


@pytest.fixture
def receipt() -> ReceiptData:
    return make_receipt()


@pytest.fixture(name="make_receipt")
def make_receipt_fixture() -> Callable[..., ReceiptData]:
    return make_receipt
