"""The printer simulator against a client nobody here wrote (python-escpos's Network printer over
TCP) and a decoder nobody here wrote (zbar, through pyzbar) reading the PNG of its paper."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from escpos.printer import Network
from PIL import Image
from pyzbar import pyzbar

from hardware.errors import PrinterUnavailable
from hardware.printer import PrinterStatus, SerialPrinter
from hardware.sim.escpos import EscposDecoder
from hardware.sim.printer import MODEL_ID, ROM_VERSION_ID, TYPE_ID, PrinterSim


@pytest.fixture
def sim() -> Iterator[PrinterSim]:
    with PrinterSim(transport="tcp", width_dots=576) as s:
        yield s


@pytest.fixture
def escpos(sim: PrinterSim) -> Iterator[Network]:
    p = Network(sim.host, port=sim.port, timeout=5)
    yield p
    p.close()


def decoded(sim: PrinterSim, tmp_path: Path) -> list[tuple[str, str]]:
    png = sim.paper.save_png(tmp_path / "paper.png")
    with Image.open(png) as img:
        return [(s.type, s.data.decode()) for s in pyzbar.decode(img)]


def test_ean13_from_python_escpos_decodes_with_zbar(sim: PrinterSim, escpos: Network, tmp_path: Path) -> None:
    escpos.text("Token A-017\n")
    escpos.barcode("400638133393", "EAN13", height=80, width=3, pos="BELOW")  # GS k, function A
    escpos.cut()
    sim.wait_for_cuts(1)
    assert sim.paper.barcodes == [("EAN13", "4006381333931")]  # the printer adds the check digit
    assert sim.decoder.unknown_bytes == 0 and sim.decoder.refused_barcodes == 0
    assert decoded(sim, tmp_path) == [("EAN13", "4006381333931")]


@pytest.mark.parametrize(
    ("m", "data", "zbar"),
    [
        (67, b"4006381333931", ("EAN13", "4006381333931")),  # function B
        (3, b"9638507", ("EAN8", "96385074")),
        (0, b"03600029145", ("EAN13", "0036000291452")),  # zbar reports UPC-A as its EAN-13 form
        (4, b"KIOSK-42", ("CODE39", "KIOSK-42")),
        (5, b"12345678", ("I25", "12345678")),
        (73, b"{BA-017/1234", ("CODE128", "A-017/1234")),
        (73, b"{C\x0c\x22\x38\x4e", ("CODE128", "12345678")),
    ],
)
def test_common_symbologies_decode(
    sim: PrinterSim, m: int, data: bytes, zbar: tuple[str, str], tmp_path: Path
) -> None:
    head = b"\x1b@\x1ba\x01\x1dh\x50\x1dw\x02"
    body = bytes([0x1D, 0x6B, m]) + (data + b"\x00" if m <= 6 else bytes([len(data)]) + data)
    sim.handle(head + body + b"\x1dV\x00")
    assert decoded(sim, tmp_path) == [zbar]


def test_barcodes_a_printer_refuses_are_not_printed() -> None:
    d = EscposDecoder()
    d.feed(b"\x1dk\x024006381333932\x00")  # wrong check digit
    d.feed(b"\x1dk\x0412ab\x00")  # lower case is not CODE39
    d.feed(b"\x1dk\x05123\x00")  # ITF needs an even count of digits
    d.feed(b"\x1dw\x06\x1dk\x49\x32{B" + b"W" * 48)  # too wide for the paper at 6 dots a module
    assert d.paper.barcodes == [] and d.refused_barcodes == 4 and d.unknown_bytes == 0


def test_barcode_split_across_reads(sim: PrinterSim) -> None:
    job = b"\x1dk\x02400638133393\x00hello\n"
    for i in range(len(job)):
        sim.handle(job[i : i + 1])
    assert sim.paper.barcodes == [("EAN13", "4006381333931")] and sim.paper.lines == ["hello"]


def test_gs_r_and_gs_i_answer_as_epson(sim: PrinterSim, escpos: Network) -> None:
    assert escpos.query_status(b"\x1dr\x01") == b"\x00"  # paper adequate and present
    assert escpos.query_status(b"\x1dr\x02") == b"\x00"  # drawer pin 3 low
    assert escpos.query_status(b"\x1dI\x01") == bytes([MODEL_ID])
    assert escpos.query_status(b"\x1dI\x32") == bytes([TYPE_ID])  # "2": autocutter fitted
    assert escpos.query_status(b"\x1dI\x03") == bytes([ROM_VERSION_ID])
    for reply in (MODEL_ID, TYPE_ID, ROM_VERSION_ID):
        assert reply & 0x90 == 0  # printer IDs read 0xx0xxxx: never mistaken for status
    assert escpos.query_status(b"\x1dI\x43") == b"_SIM-THERMAL\x00"  # printer information B
    sim.fail_mode = "paper_low"
    assert escpos.query_status(b"\x1dr\x31") == b"\x03"
    assert escpos.paper_status() == 1  # python-escpos reads DLE EOT 4: near end
    sim.fail_mode = None
    assert escpos.is_online() and escpos.paper_status() == 2


def _recv(conn: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = conn.recv(n - len(got))
        assert chunk, "the printer hung up"
        got += chunk
    return got


def test_automatic_status_back(sim: PrinterSim) -> None:
    with socket.create_connection((sim.host, sim.port), timeout=5) as conn:
        conn.sendall(b"\x1da\x0f")  # ASB: drawer, online/offline, errors, paper sensor
        first = _recv(conn, 4)
        assert first == b"\x10\x00\x00\x00"  # online, cover closed, paper adequate
        assert first[0] & 0x93 == 0x10  # ASB's fixed bits: distinct from DLE EOT replies
        sim.fail_mode = "paper_out"
        assert _recv(conn, 4) == b"\x18\x00\x0c\x00"  # offline, paper end
        sim.fail_mode = "paper_low"
        assert _recv(conn, 4) == b"\x10\x00\x03\x00"
        sim.fail_mode = "no_status"  # not a change ASB reports...
        sim.fail_mode = None  # ...this is: paper adequate again
        assert _recv(conn, 4) == b"\x10\x00\x00\x00"
        conn.sendall(b"\x1da\x00\x1dr\x01")  # ASB off; then an ordinary status query
        assert _recv(conn, 1) == b"\x00"
        sim.fail_mode = "paper_low"
        conn.sendall(b"\x1dr\x01")
        assert _recv(conn, 1) == b"\x03"  # no ASB bytes before it


def test_gs_r_is_not_executed_while_offline(sim: PrinterSim) -> None:
    sim.fail_mode = "offline"
    assert sim.handle(b"\x1dr\x01\x1dI\x01") == b""
    assert sim.handle(b"\x10\x04\x01") == b"\x1a"  # real-time status still answers: offline


def test_busy_printer_prints_what_waited(sim: PrinterSim) -> None:
    sim.fail_mode = "busy"
    with SerialPrinter(sim.url, status_timeout=0.2) as printer:
        assert printer.status() is PrinterStatus.UNKNOWN  # no reply while its buffer is full
        assert printer.print_bytes(b"\x1b@waited\n\x1dV\x00") is PrinterStatus.UNKNOWN
        assert sim.paper.cuts == 0
        sim.fail_mode = None
        sim.wait_for_cuts(1)
    assert "waited" in sim.paper.lines


def test_busy_printer_on_a_pty_times_out_the_write() -> None:
    with PrinterSim(transport="pty") as sim:
        sim.fail_mode = "busy"
        printer = SerialPrinter(sim.url, status_timeout=0.1, write_timeout=0.3)
        with pytest.raises(PrinterUnavailable, match="reprint"):
            printer.print_bytes(b"\x1b@" + b"x" * 256 * 1024)  # more than a pty buffers
        printer.close()


def test_unplug_mid_job_then_the_cable_comes_back(sim: PrinterSim) -> None:
    sim.replug_after = 0.2
    sim.unplug_after = 100
    sim.fail_mode = "unplug"
    printer = SerialPrinter(sim.url, status_timeout=0.3, check_status=False)
    job = b"\x1b@" + b"receipt line\n" * 50 + b"\x1dV\x00"
    printer.print_bytes(job)  # may still "succeed": the bytes sit in the socket's buffers
    sim.wait_for(lambda: sim.unplugs == 1)  # the line dropped partway through the job
    assert sim.bytes_received == 100 and sim.paper.cuts == 0
    with pytest.raises(PrinterUnavailable):
        for _ in range(50):  # the dead connection fails within a write or two
            printer.print_bytes(job)
    sim.wait_for(lambda: not sim.unplugged)  # back by itself, as when the cable is pushed in
    assert sim.fail_mode is None
    printer.check_status = True
    assert printer.print_bytes(b"\x1b@again\n\x1dV\x00") is PrinterStatus.OK
    sim.wait_for_cuts(1)
    assert sim.paper.lines[-1] == "again"
