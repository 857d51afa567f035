"""The serial/socket printer against the ESC/POS simulator on real TCP sockets and ptys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from agent.harness import free_port
from hardware.errors import PrinterDisabled, PrinterOffline, PrinterPaperOut, PrinterUnavailable
from hardware.printer import NullPrinter, PrinterStatus, SerialPrinter, open_printer
from hardware.printer.base import decode_status
from hardware.receipt import ReceiptData, verify_receipt_qr
from hardware.sim.printer import PrinterSim


@pytest.fixture
def sim() -> Iterator[PrinterSim]:
    with PrinterSim(transport="tcp", width_dots=576) as s:
        yield s


@pytest.fixture
def printer(sim: PrinterSim) -> Iterator[SerialPrinter]:
    p = SerialPrinter(sim.url, width_dots=576, status_timeout=0.3)
    yield p
    p.close()


def test_whole_receipt_over_tcp(
    sim: PrinterSim,
    printer: SerialPrinter,
    receipt: ReceiptData,
    device_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    assert printer.print_receipt(receipt, sign=device_key.sign) is PrinterStatus.OK
    sim.wait_for_cuts(1)
    text = sim.paper.text
    assert "A-017" in text and "K-0042" in text
    assert "1,500.50" in text and "1,520.50" in text  # amounts travel as text, the rupee sign as a bit image
    assert "XXXX-XXXX-1234" in text
    assert "14:00 IST" in text  # 08:30 UTC on paper in IST
    assert "DUPLICATE" not in text
    [payload] = sim.paper.qr_payloads
    fields = verify_receipt_qr(payload, device_key.public_key())
    assert (
        fields["token"] == "A-017" and fields["seq"] == 1234 and fields["hash_prefix"] == "0123456789abcdef"
    )
    assert sim.paper.rasters, "Hindi lines should be rasterised"
    assert sim.decoder.unknown_bytes == 0
    png = sim.paper.save_png(tmp_path / "paper.png")
    with Image.open(png) as img:
        assert img.width == 576 and img.height > 600
        assert img.convert("L").getextrema()[0] == 0  # something is printed


def test_duplicate_on_58mm_pty(receipt: ReceiptData, device_key: Ed25519PrivateKey) -> None:
    dup = ReceiptData(**{**receipt.__dict__, "duplicate": True, "lang": "en"})
    with PrinterSim(transport="pty", width_dots=384) as sim:
        with SerialPrinter(sim.url, width_dots=384, status_timeout=0.3) as printer:
            printer.print_receipt(dup, sign=device_key.sign)
        sim.wait_for_cuts(1)
        assert "DUPLICATE" in sim.paper.text
        assert all(len(line) <= 32 for line in sim.paper.lines)
        assert sim.paper.render().width == 384


def test_paper_out_refuses_to_print(sim: PrinterSim, printer: SerialPrinter) -> None:
    sim.fail_mode = "paper_out"
    assert printer.status() is PrinterStatus.PAPER_OUT
    with pytest.raises(PrinterPaperOut, match="out of paper"):
        printer.print_bytes(b"\x1b@hello\n\x1dV\x00")
    assert sim.paper.text == "" and sim.paper.cuts == 0
    sim.fail_mode = None
    assert printer.print_bytes(b"\x1b@hello\n\x1dV\x00") is PrinterStatus.OK
    assert sim.paper.lines == ["hello"]


def test_paper_low_still_prints(sim: PrinterSim, printer: SerialPrinter) -> None:
    sim.fail_mode = "paper_low"
    assert printer.print_bytes(b"\x1b@low\n\x1dV\x00") is PrinterStatus.PAPER_LOW
    assert sim.paper.lines == ["low"]


def test_offline_refuses(sim: PrinterSim, printer: SerialPrinter) -> None:
    sim.fail_mode = "offline"
    with pytest.raises(PrinterOffline):
        printer.print_bytes(b"\x1b@x\n")


@pytest.mark.parametrize("mode", ["no_status", "garbage", "slow"])
def test_no_status_reply_is_unknown_never_ok(sim: PrinterSim, mode: str) -> None:
    sim.fail_mode = mode
    sim.delay = 0.4
    with SerialPrinter(sim.url, status_timeout=0.2) as printer:
        assert printer.status() is PrinterStatus.UNKNOWN
        # unknown status does not block printing (many printers never answer)
        assert printer.print_bytes(b"\x1b@still prints\n\x1dV\x00") is PrinterStatus.UNKNOWN
    sim.wait_for_cuts(1)
    assert "still prints" in sim.paper.text


def test_unplugged_mid_print_then_reconnects(
    sim: PrinterSim, printer: SerialPrinter, receipt: ReceiptData, device_key: Ed25519PrivateKey
) -> None:
    assert printer.status() is PrinterStatus.OK
    sim.unplug_after = 500
    sim.fail_mode = "unplug"
    with pytest.raises(PrinterUnavailable, match="reprint"):
        printer.print_receipt(receipt, sign=device_key.sign)
    sim.wait_for(lambda: sim.unplugged)
    assert sim.paper.cuts == 0
    # still unplugged: a retry fails fast with the same transient error
    with pytest.raises(PrinterUnavailable):
        printer.print_receipt(receipt, sign=device_key.sign)
    assert printer.status() is PrinterStatus.DISCONNECTED
    sim.replug()
    sim.paper.clear()
    assert printer.print_receipt(receipt, sign=device_key.sign) is PrinterStatus.OK
    sim.wait_for_cuts(1)
    assert "A-017" in sim.paper.text


@dataclass
class FakePortInfo:
    """What serial.tools.list_ports.comports() yields (the bits we read)."""

    device: str
    vid: int | None
    pid: int | None


def test_replug_on_a_new_tty_is_found_by_usb_id() -> None:
    with PrinterSim(transport="pty", width_dots=384) as sim:
        ports = [FakePortInfo("/dev/ttyS99", None, None), FakePortInfo(sim.url, 0x0483, 0x5743)]
        printer = SerialPrinter(
            "", usb_id="0483:5743", width_dots=384, status_timeout=0.3, list_ports=lambda: ports
        )
        assert printer.print_bytes(b"\x1b@one\n") is PrinterStatus.OK
        assert printer.device == sim.url
        sim.unplug()
        with pytest.raises(PrinterUnavailable):
            printer.print_bytes(b"\x1b@lost\n")
        ports.pop()  # the OS forgets the device...
        assert printer.status() is PrinterStatus.DISCONNECTED
        sim.replug()  # ...and it comes back on a new pty
        ports.append(FakePortInfo(sim.url, 0x0483, 0x5743))
        assert printer.print_bytes(b"\x1b@two\n") is PrinterStatus.OK
        assert printer.device == sim.url
        sim.wait_for(lambda: "two" in sim.paper.lines)
        printer.close()


def test_nothing_listening_is_unavailable() -> None:
    printer = SerialPrinter(f"socket://127.0.0.1:{free_port()}")
    assert printer.status() is PrinterStatus.DISCONNECTED
    with pytest.raises(PrinterUnavailable, match="Cannot open the printer"):
        printer.print_bytes(b"x")


def test_loop_url_has_no_status() -> None:
    with SerialPrinter("loop://", status_timeout=0.1) as printer:
        # loop:// echoes our DLE EOT request back: 0x10 is not a valid status byte
        assert printer.status() is PrinterStatus.UNKNOWN


def test_none_url_disables_printing(receipt: ReceiptData, device_key: Ed25519PrivateKey) -> None:
    printer = open_printer("none", width_dots=384)
    assert isinstance(printer, NullPrinter)
    assert printer.status() is PrinterStatus.DISABLED
    with pytest.raises(PrinterDisabled):
        printer.print_receipt(receipt, sign=device_key.sign)


def test_decode_status_table() -> None:
    assert decode_status(None, None) is PrinterStatus.UNKNOWN
    assert decode_status(0x12, None) is PrinterStatus.UNKNOWN
    assert decode_status(0x12, 0x12) is PrinterStatus.OK
    assert decode_status(0x1A, 0x72) is PrinterStatus.PAPER_OUT
    assert decode_status(0x12, 0x1E) is PrinterStatus.PAPER_LOW
    assert decode_status(0x1A, 0x12) is PrinterStatus.OFFLINE
    assert decode_status(0xFF, 0x12) is PrinterStatus.UNKNOWN
