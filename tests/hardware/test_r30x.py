"""R30x frame codec (property tests) and the sensor client over a real pty."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.errors import (
    EnrollMismatch,
    FingerprintRejected,
    FingerprintUnavailable,
    FrameError,
    NoFinger,
    TransientHardwareError,
)
from hardware.fingerprint.r30x import (
    CMD_GEN_IMG,
    DEFAULT_ADDRESS,
    MAX_PAYLOAD,
    PACKET_IDS,
    PID_ACK,
    Frame,
    R30xSensor,
    checksum,
    decode_frame,
    encode_frame,
)
from hardware.sim.r30x import R30xSim

pids = st.sampled_from(sorted(PACKET_IDS))
payloads = st.binary(max_size=MAX_PAYLOAD)
addresses = st.integers(min_value=0, max_value=0xFFFFFFFF)


@given(pid=pids, payload=payloads, address=addresses)
def test_frame_round_trips(pid: int, payload: bytes, address: int) -> None:
    raw = encode_frame(pid, payload, address)
    assert raw[:2] == b"\xef\x01"
    assert struct.unpack(">H", raw[7:9])[0] == len(payload) + 2
    assert decode_frame(raw, address=address) == Frame(pid=pid, payload=payload, address=address)


@given(pid=pids, payload=st.binary(max_size=64), address=addresses, data=st.data())
def test_any_single_byte_change_is_refused(
    pid: int, payload: bytes, address: int, data: st.DataObject
) -> None:
    raw = bytearray(encode_frame(pid, payload, address))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="index")
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != raw[index]), label="byte")
    raw[index] = new
    with pytest.raises(FrameError):
        decode_frame(bytes(raw), address=address)


@given(pid=pids, payload=st.binary(max_size=64), address=addresses, data=st.data())
def test_truncated_or_extended_frames_are_refused(
    pid: int, payload: bytes, address: int, data: st.DataObject
) -> None:
    raw = encode_frame(pid, payload, address)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="cut")
    with pytest.raises(FrameError):
        decode_frame(raw[:cut], address=address)
    extra = data.draw(st.binary(min_size=1, max_size=4), label="extra")
    with pytest.raises(FrameError):
        decode_frame(raw + extra, address=address)


def test_checksum_matches_datasheet_example() -> None:
    # GenImg command from the R307 datasheet: EF01 FFFFFFFF 01 0003 01 0005
    assert encode_frame(0x01, b"\x01") == bytes.fromhex("EF01FFFFFFFF0100030100 05".replace(" ", ""))
    assert checksum(0x01, b"\x01") == 5


def test_frame_errors_are_transient() -> None:
    assert issubclass(FrameError, TransientHardwareError)


@pytest.fixture
def sim() -> Iterator[R30xSim]:
    with R30xSim() as s:
        yield s


@pytest.fixture
def sensor(sim: R30xSim) -> Iterator[R30xSensor]:
    sensor = R30xSensor(sim.url, timeout=1.0, finger_timeout=1.0)
    with sensor:
        yield sensor


def test_enroll_then_identify(sim: R30xSim, sensor: R30xSensor) -> None:
    assert sensor.template_count() == 0
    sim.queue_fingers(["alice", None, "alice"])
    sensor.enroll(7)
    assert sim.templates == {7: "alice"}
    assert sensor.template_count() == 1
    sim.finger = "alice"
    assert sensor.identify() == 7


def test_identify_without_match_returns_none(sim: R30xSim, sensor: R30xSensor) -> None:
    sim.templates[3] = "alice"
    sim.finger = "bob"
    assert sensor.identify() is None
    sensor.clear()
    assert sim.templates == {}


def test_enroll_with_two_different_fingers_fails(sim: R30xSim, sensor: R30xSensor) -> None:
    sim.queue_fingers(["alice", None, "bob"])
    with pytest.raises(EnrollMismatch):
        sensor.enroll(1)
    assert sim.templates == {}


def test_no_finger_times_out_with_injected_clock(sim: R30xSim) -> None:
    ticks = iter(range(10_000))
    sensor = R30xSensor(sim.url, finger_timeout=5, clock=lambda: float(next(ticks)))
    with sensor:
        with pytest.raises(NoFinger):
            sensor.identify()
    assert sim.commands.count(CMD_GEN_IMG) >= 2


def test_slot_out_of_range_is_permanent(sensor: R30xSensor) -> None:
    with pytest.raises(FingerprintRejected):
        sensor.enroll(5000)


def test_wrong_password_is_refused(sim: R30xSim) -> None:
    sim.password = 0x1234
    with pytest.raises(FingerprintRejected, match="password"):
        R30xSensor(sim.url, password=0).open()
    with R30xSensor(sim.url, password=0x1234):
        pass


def test_reply_with_bad_checksum_is_refused(sim: R30xSim, sensor: R30xSensor) -> None:
    sim.fail_mode = "bad_checksum"
    with pytest.raises(FrameError, match="checksum"):
        sensor.template_count()
    sim.fail_mode = None
    assert sensor.template_count() == 0  # the client recovers on the same port


def test_garbage_reply_is_refused(sim: R30xSim, sensor: R30xSensor) -> None:
    sim.fail_mode = "garbage"
    with pytest.raises(FrameError):
        sensor.template_count()


def test_command_with_bad_checksum_is_refused_by_the_sensor(sim: R30xSim) -> None:
    import serial

    frame = bytearray(encode_frame(0x01, bytes([0x1D])))
    frame[-1] ^= 0xFF
    port = serial.serial_for_url(sim.url, baudrate=57600, timeout=1)
    try:
        port.write(bytes(frame))
        reply = decode_frame(port.read(12), address=DEFAULT_ADDRESS)
    finally:
        port.close()
    assert reply.pid == PID_ACK and reply.payload == b"\x01"
    assert sim.bad_frames == 1


def test_silent_sensor_is_unavailable(sim: R30xSim, sensor: R30xSensor) -> None:
    sim.fail_mode = "silent"
    with pytest.raises(FingerprintUnavailable):
        sensor.template_count()


def test_unplugged_sensor_is_unavailable(sim: R30xSim, sensor: R30xSensor) -> None:
    sim.unplug()
    with pytest.raises(FingerprintUnavailable):
        sensor.template_count()
    sim.replug()
    sensor.url = sim.url
    assert sensor.template_count() == 0


def test_pty_is_a_real_tty(sim: R30xSim) -> None:
    assert os.path.exists(sim.url) and sim.url.startswith("/dev/")
