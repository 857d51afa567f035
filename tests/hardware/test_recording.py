"""The recording printer: what it was asked to print, and the failures it can be told to have."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import hardware
from hardware.errors import PrinterOffline, PrinterPaperOut, PrinterUnavailable
from hardware.printer import Printer, PrinterStatus, RecordingPrinter
from hardware.receipt import ReceiptData, verify_receipt_qr
from hardware.sim.escpos import EscposDecoder


def test_records_each_receipt_and_its_bytes(receipt: ReceiptData, device_key: Ed25519PrivateKey) -> None:
    printer = RecordingPrinter(width_dots=384)
    assert isinstance(printer, Printer) and hardware.RecordingPrinter is RecordingPrinter
    with printer:
        assert printer.print_receipt(receipt, sign=device_key.sign) is PrinterStatus.OK
        assert printer.print_bytes(b"\x1b@plain\n") is PrinterStatus.OK
    assert printer.receipts == [receipt] and len(printer.jobs) == 2 and not printer.is_open
    decoder = EscposDecoder(width_dots=384)
    decoder.feed(printer.jobs[0])
    assert "A-017" in decoder.paper.text and decoder.paper.cuts == 1
    [qr] = decoder.paper.qr_payloads
    assert verify_receipt_qr(qr, device_key.public_key())["seq"] == 1234


@pytest.mark.parametrize(
    ("mode", "error", "status"),
    [
        ("paper_out", PrinterPaperOut, PrinterStatus.PAPER_OUT),
        ("unplugged", PrinterUnavailable, PrinterStatus.DISCONNECTED),
        ("offline", PrinterOffline, PrinterStatus.OFFLINE),
    ],
)
def test_told_to_fail_it_refuses_and_records_nothing(
    mode: str,
    error: type[Exception],
    status: PrinterStatus,
    receipt: ReceiptData,
    device_key: Ed25519PrivateKey,
) -> None:
    printer = RecordingPrinter(build=False)
    printer.fail(mode)  # type: ignore[arg-type]
    assert printer.status() is status
    with pytest.raises(error):
        printer.print_receipt(receipt, sign=device_key.sign)
    assert printer.receipts == [] and printer.jobs == [] and len(printer.refused) == 1
    printer.recover()
    assert printer.print_receipt(receipt, sign=device_key.sign) is PrinterStatus.OK
    assert printer.receipts == [receipt] and printer.jobs == []  # build=False keeps no bytes


def test_unknown_status_still_prints(receipt: ReceiptData, device_key: Ed25519PrivateKey) -> None:
    printer = RecordingPrinter(build=False)
    printer.fail("unknown")  # many cheap printers never answer DLE EOT
    assert printer.print_receipt(receipt, sign=device_key.sign) is PrinterStatus.UNKNOWN
    assert printer.receipts == [receipt]
