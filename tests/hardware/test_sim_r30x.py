"""The R30x simulator against a client nobody here wrote (pyfingerprint 1.5, one byte per write)
and against our own client fed and read one byte at a time, over a real pty."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial
from PIL import Image
from pyfingerprint.pyfingerprint import PyFingerprint

from hardware.errors import CaptureFailed, FingerprintRejected
from hardware.fingerprint.r30x import (
    CC_BAD_SLOT,
    CC_NO_MATCH,
    CC_OK,
    CC_PACKET_ERROR,
    CC_READ_TEMPLATE,
    CMD_GEN_IMG,
    CMD_LOAD_CHAR,
    CMD_MATCH,
    CMD_TEMPLATE_NUM,
    PID_ACK,
    PID_COMMAND,
    R30xSensor,
    decode_frame,
    encode_frame,
)
from hardware.sim.r30x import CHAR_LEN, R30xSim, features


@pytest.fixture
def sim() -> Iterator[R30xSim]:
    with R30xSim(transport="pty") as s:
        yield s


class Paced:
    """pyfingerprint's own serial port, each of its one-byte writes waited out until the simulator
    has read it: the simulator sees the frame one byte per read, whatever the machine's load."""

    def __init__(self, sim: R30xSim, port: Any) -> None:
        self.sim, self.port = sim, port

    def write(self, data: bytes) -> int:
        before = self.sim.bytes_received
        written = int(self.port.write(data))
        self.sim.wait_for(lambda: self.sim.bytes_received >= before + len(data), timeout=5)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)


@pytest.fixture
def pyfp(sim: R30xSim, request: pytest.FixtureRequest) -> Iterator[PyFingerprint]:
    """pyfingerprint on the simulator's pty; ``@pytest.mark.parametrize("pyfp", ["paced"], indirect=True)``
    paces its writes."""
    f = PyFingerprint(sim.url, 57600, 0xFFFFFFFF, 0x00000000)
    port = f._PyFingerprint__serial  # type: ignore[attr-defined]
    if getattr(request, "param", "as-is") == "paced":
        f._PyFingerprint__serial = Paced(sim, port)  # type: ignore[attr-defined]
    yield f
    port.close()


def press(sim: R30xSim, f: PyFingerprint, finger: str, buffer_id: int) -> None:
    sim.finger = finger
    assert f.readImage() is True
    assert f.convertImage(buffer_id) is True


@pytest.mark.parametrize("pyfp", ["as-is", "paced"], indirect=True)
def test_pyfingerprint_enroll_search_load_delete_count(sim: R30xSim, pyfp: PyFingerprint) -> None:
    assert pyfp.verifyPassword() is True
    assert pyfp.getTemplateCount() == 0
    assert pyfp.getStorageCapacity() == 1000
    sim.finger = None
    assert pyfp.readImage() is False  # no finger
    # enroll: two presses of the same finger, merged, stored in the first free slot
    press(sim, pyfp, "asha-thumb", 0x01)
    press(sim, pyfp, "asha-thumb", 0x02)
    assert pyfp.compareCharacteristics() > 0
    assert pyfp.createTemplate() is True
    assert pyfp.storeTemplate() == 0  # found through ReadIndexTable
    assert pyfp.storeTemplate(5) == 5
    assert pyfp.getTemplateIndex(0)[:6] == [True, False, False, False, False, True]
    assert pyfp.getTemplateCount() == 2
    # search
    press(sim, pyfp, "asha-thumb", 0x01)
    assert pyfp.searchTemplate() == (0, sim.score)
    press(sim, pyfp, "stranger", 0x01)
    assert pyfp.searchTemplate() == (-1, -1)
    # load a stored template and compare it on the sensor
    assert pyfp.loadTemplate(5, 0x02) is True
    press(sim, pyfp, "asha-thumb", 0x01)
    assert pyfp.compareCharacteristics() == sim.score
    # delete, count, clear
    assert pyfp.deleteTemplate(0) is True
    assert pyfp.getTemplateCount() == 1 and sim.templates == {5: "asha-thumb"}
    with pytest.raises(Exception, match="template could not be read"):
        pyfp.loadTemplate(0, 0x01)  # 0x0C: nothing in that slot
    assert pyfp.clearDatabase() is True
    assert pyfp.getTemplateCount() == 0
    assert sim.bad_frames == 0


@pytest.mark.parametrize("pyfp", ["as-is", "paced"], indirect=True)
def test_pyfingerprint_characteristics_round_trip(sim: R30xSim, pyfp: PyFingerprint) -> None:
    press(sim, pyfp, "ravi-index", 0x01)
    assert bytes(pyfp.downloadCharacteristics(0x01)) == features("ravi-index")  # UpChar, 4 data packets
    other = list(range(256)) * 2
    assert pyfp.uploadCharacteristics(0x02, other) is True  # DownChar then UpChar: the same bytes
    assert pyfp.compareCharacteristics() == 0  # 0x08: buffers differ
    assert len(features("x")) == CHAR_LEN


def test_pyfingerprint_system_settings(sim: R30xSim, pyfp: PyFingerprint) -> None:
    status, system_id, capacity, level, address, size_code, baud = pyfp.getSystemParameters()
    assert (capacity, level, address, baud) == (1000, 3, 0xFFFFFFFF, 6)
    assert pyfp.getMaxPacketSize() == 128
    pyfp.setSecurityLevel(5)
    assert pyfp.getSecurityLevel() == 5
    assert isinstance(pyfp.generateRandomNumber(), int)
    assert pyfp.setPassword(0x1234) is True and sim.password == 0x1234
    assert pyfp.verifyPassword() is True  # pyfingerprint now sends the new password
    assert PyFingerprint(sim.url, 57600, 0xFFFFFFFF, 0).verifyPassword() is False  # 0x13


def test_pyfingerprint_downloads_an_image(sim: R30xSim, pyfp: PyFingerprint, tmp_path: Path) -> None:
    sim.finger = "asha-thumb"
    assert pyfp.readImage() is True
    pyfp.downloadImage(str(tmp_path / "finger.bmp"))  # UpImage: 288 data packets
    with Image.open(tmp_path / "finger.bmp") as img:
        assert img.size == (256, 288)
        pixels = img.convert("L").tobytes()
        assert min(pixels) < 100 < max(pixels)


def test_pyfingerprint_sees_capture_errors(sim: R30xSim, pyfp: PyFingerprint) -> None:
    sim.finger = "asha-thumb"
    sim.fail_mode = "image_fail"
    with pytest.raises(Exception, match="Could not read image"):  # 0x03
        pyfp.readImage()
    sim.fail_mode = "poor_image"
    assert pyfp.readImage() is True
    with pytest.raises(Exception, match="too few feature points"):  # 0x07
        pyfp.convertImage(0x01)


# --- the byte stream, piece by piece --------------------------------------------------------------


def _ack(sim: R30xSim, raw: bytes) -> tuple[int, bytes]:
    frame = decode_frame(raw, address=sim.address)
    assert frame.pid == PID_ACK
    return frame.payload[0], frame.payload[1:]


def test_a_command_split_anywhere_gets_one_answer(sim: R30xSim) -> None:
    command = encode_frame(PID_COMMAND, bytes([CMD_TEMPLATE_NUM]))
    noise = b"\x00\xef\x13\xef"  # a stray EF before the real EF 01 must not swallow the frame
    stream = noise + command + command
    out = b"".join(sim.handle(bytes([b])) for b in stream)
    assert out == encode_frame(PID_ACK, b"\x00\x00\x00") * 2
    sim.templates[3] = "x"
    assert sim.handle(command[:1]) == b"" and sim.handle(command[1:]) == encode_frame(
        PID_ACK, b"\x00\x00\x01"
    )


def test_confirmation_codes_are_the_datasheets(sim: R30xSim) -> None:
    def ask(code: int, params: bytes = b"") -> int:
        return _ack(sim, sim.handle(encode_frame(PID_COMMAND, bytes([code]) + params)))[0]

    assert ask(CMD_LOAD_CHAR, struct.pack(">BH", 1, 5000)) == CC_BAD_SLOT  # 0x0B
    assert ask(CMD_LOAD_CHAR, struct.pack(">BH", 1, 7)) == CC_READ_TEMPLATE  # 0x0C
    assert ask(CMD_MATCH) == CC_NO_MATCH  # 0x08
    assert ask(0x7E) == CC_PACKET_ERROR  # no such instruction
    sim.finger = "a"
    assert ask(CMD_GEN_IMG) == CC_OK


class OneByteAtATime:
    """A real pyserial port that writes one byte per write() -- each seen by the simulator on its
    own -- and reads at most one byte per read()."""

    def __init__(self, sim: R30xSim, port: Any) -> None:
        self.sim, self.port = sim, port
        self.reads = 0

    def write(self, data: bytes) -> int:
        for b in data:
            before = self.sim.bytes_received
            self.port.write(bytes([b]))
            self.port.flush()
            self.sim.wait_for(lambda n=before: self.sim.bytes_received > n, timeout=5)  # type: ignore[misc]
        return len(data)

    def read(self, size: int = 1) -> bytes:
        self.reads += 1
        return bytes(self.port.read(min(size, 1)))

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()


def test_our_client_byte_at_a_time(sim: R30xSim) -> None:
    ports: list[OneByteAtATime] = []

    def open_port(url: str, **kwargs: Any) -> OneByteAtATime:
        ports.append(OneByteAtATime(sim, serial.serial_for_url(url, **kwargs)))
        return ports[-1]

    with R30xSensor(sim.url, finger_timeout=1.0, serial_for_url=open_port) as sensor:
        sim.queue_fingers(["asha-thumb", None, "asha-thumb"])
        sensor.enroll(9)
        assert sensor.used_slots() == [9]
        sim.finger = "asha-thumb"
        assert sensor.identify() == 9
        sensor.load(9, 2)
        assert sensor.match() == sim.score
        params = sensor.system_parameters()
        assert (params.capacity, params.packet_size, params.baudrate) == (1000, 128, 57600)
        sensor.delete(9)
        assert sensor.template_count() == 0 and sensor.used_slots() == []
    assert sim.bad_frames == 0
    assert ports[0].reads > 100  # every reply really was read one byte at a time


def test_our_client_maps_the_new_codes(sim: R30xSim) -> None:
    with R30xSensor(sim.url, finger_timeout=1.0) as sensor:
        with pytest.raises(FingerprintRejected, match="could not read the stored template"):
            sensor.load(3)
        with pytest.raises(FingerprintRejected):
            sensor.delete(999, count=2)  # beyond the library: refused before asking
        sim.finger = "asha-thumb"
        sim.fail_mode = "poor_image"
        with pytest.raises(CaptureFailed, match="too few features"):
            sensor.identify()
        assert sensor.info()["capacity"] == 1000
