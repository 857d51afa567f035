"""ZhianTec R30x (R305/R307/R503...) fingerprint sensor over a serial port.

Frame layout (all integers big-endian)::

    EF 01 | address (4) | packet id (1) | length (2) | payload (length-2) | checksum (2)

``length`` counts the payload plus the two checksum bytes; ``checksum`` is the
sum of the packet id, both length bytes and every payload byte, mod 65536.
The address is not covered by the checksum, so the decoder also insists on the
address we expect.

Templates stay on the sensor; matching happens there.  We only ever send
commands and read confirmation codes and slot numbers.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import serial

from hardware._serialio import PORT_ERRORS
from hardware.errors import (
    CaptureFailed,
    EnrollMismatch,
    FingerprintError,
    FingerprintRejected,
    FingerprintUnavailable,
    FrameError,
    NoFinger,
    TransientHardwareError,
)
from hardware.fingerprint.base import FingerprintSensor

log = logging.getLogger(__name__)

HEADER = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
DEFAULT_BAUDRATE = 57600
MAX_PAYLOAD = 1024
HEADER_LEN = 9  # EF01 + address + pid + length

PID_COMMAND = 0x01
PID_DATA = 0x02
PID_ACK = 0x07
PID_END_DATA = 0x08
PACKET_IDS = frozenset({PID_COMMAND, PID_DATA, PID_ACK, PID_END_DATA})

# Instruction codes (ZhianTec R30x datasheet)
CMD_GEN_IMG = 0x01  # GenImg: capture a finger image into ImageBuffer
CMD_IMG2TZ = 0x02  # Img2Tz: image -> character file in CharBuffer 1 or 2
CMD_MATCH = 0x03  # Match: compare CharBuffer1 with CharBuffer2
CMD_SEARCH = 0x04  # Search: CharBuffer vs the library
CMD_REG_MODEL = 0x05  # RegModel: merge both buffers into a template
CMD_STORE = 0x06  # Store: buffer -> library slot
CMD_LOAD_CHAR = 0x07  # LoadChar: library slot -> buffer
CMD_UP_CHAR = 0x08  # UpChar: buffer -> host (data packets follow)
CMD_DOWN_CHAR = 0x09  # DownChar: host -> buffer (data packets follow)
CMD_UP_IMAGE = 0x0A  # UpImage: ImageBuffer -> host (data packets follow)
CMD_DELETE_CHAR = 0x0C  # DeletChar: delete N templates from a slot
CMD_EMPTY = 0x0D  # Empty: clear the library
CMD_SET_SYS_PARA = 0x0E  # SetSysPara: baud rate, security level, packet size
CMD_READ_SYS_PARA = 0x0F  # ReadSysPara: 16 bytes of system parameters
CMD_SET_PWD = 0x12  # SetPwd
CMD_VFY_PWD = 0x13  # VfyPwd
CMD_GET_RANDOM = 0x14  # GetRandomCode
CMD_SET_ADDER = 0x15  # SetAdder: new module address
CMD_TEMPLATE_NUM = 0x1D  # TempleteNum: number of stored templates
CMD_READ_INDEX = 0x1F  # ReadIndexTable: used-slot bitmap, 256 slots per page

# Confirmation codes
CC_OK = 0x00
CC_PACKET_ERROR = 0x01  # error receiving the command packet
CC_NO_FINGER = 0x02
CC_ENROLL_FAIL = 0x03  # failed to collect the finger image
CC_DISORDERED = 0x06  # image too disordered to extract features
CC_FEW_POINTS = 0x07  # too few feature points
CC_NO_MATCH = 0x08
CC_NOT_FOUND = 0x09
CC_COMBINE_FAIL = 0x0A
CC_BAD_SLOT = 0x0B  # PageID beyond the library
CC_READ_TEMPLATE = 0x0C  # error reading the template / invalid template
CC_UP_CHAR_FAIL = 0x0D  # error uploading the template
CC_RECEIVE_FAIL = 0x0E  # cannot receive the following data packets
CC_UP_IMAGE_FAIL = 0x0F  # error uploading the image
CC_DELETE_FAIL = 0x10
CC_CLEAR_FAIL = 0x11
CC_WRONG_PASSWORD = 0x13
CC_NO_IMAGE = 0x15  # no valid primary image
CC_FLASH_ERROR = 0x18
CC_BAD_REGISTER = 0x1A  # invalid register number

#: the data packet sizes selected by ReadSysPara / SetSysPara parameter 6
PACKET_SIZES = (32, 64, 128, 256)

_MESSAGES: dict[int, str] = {
    CC_PACKET_ERROR: "the sensor could not read our command; check the cable and retry",
    CC_NO_FINGER: "no finger on the sensor",
    CC_ENROLL_FAIL: "the finger image could not be captured; clean the sensor and retry",
    CC_DISORDERED: "the finger image was too blurred; press the finger flat and retry",
    CC_FEW_POINTS: "the finger image had too few features; press the finger flat and retry",
    CC_NO_MATCH: "the finger does not match",
    CC_NOT_FOUND: "no stored finger matches",
    CC_COMBINE_FAIL: "the two captures were not the same finger; start enrolment again",
    CC_BAD_SLOT: "the template slot is outside the sensor's library",
    CC_READ_TEMPLATE: "the sensor could not read the stored template",
    CC_DELETE_FAIL: "the sensor could not delete the template",
    CC_CLEAR_FAIL: "the sensor could not clear its library",
    CC_WRONG_PASSWORD: "the sensor password is wrong; check the [fingerprint] configuration",
    CC_NO_IMAGE: "no finger image to convert; capture again",
    CC_UP_CHAR_FAIL: "the sensor could not send the template",
    CC_RECEIVE_FAIL: "the sensor could not receive the data that followed",
    CC_UP_IMAGE_FAIL: "the sensor could not send the image",
    CC_FLASH_ERROR: "the sensor reported a flash memory error; the sensor may need replacing",
    CC_BAD_REGISTER: "the sensor has no such setting",
}


@dataclass(frozen=True)
class Frame:
    pid: int
    payload: bytes
    address: int = DEFAULT_ADDRESS


def checksum(pid: int, payload: bytes) -> int:
    """Sum of packet id, the two length bytes and the payload, mod 65536."""
    length = len(payload) + 2
    return (pid + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


def encode_frame(pid: int, payload: bytes, address: int = DEFAULT_ADDRESS) -> bytes:
    """Build one frame.  Raises ``ValueError`` for an unknown packet id or oversized payload."""
    if pid not in PACKET_IDS:
        raise ValueError(f"unknown packet id 0x{pid:02x}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if not 0 <= address <= 0xFFFFFFFF:
        raise ValueError("address must fit in 4 bytes")
    length = len(payload) + 2
    return (
        HEADER
        + struct.pack(">IBH", address, pid, length)
        + payload
        + struct.pack(">H", checksum(pid, payload))
    )


def _parse_header(head: bytes, address: int) -> tuple[int, int]:
    """Check a 9-byte header; return (pid, length)."""
    if len(head) < HEADER_LEN:
        raise FrameError(f"truncated frame header ({len(head)} of {HEADER_LEN} bytes)")
    if head[:2] != HEADER:
        raise FrameError("frame does not start with EF 01")
    got_address, pid, length = struct.unpack(">IBH", head[2:HEADER_LEN])
    if got_address != address:
        raise FrameError(f"frame for address 0x{got_address:08x}, expected 0x{address:08x}")
    if pid not in PACKET_IDS:
        raise FrameError(f"unknown packet id 0x{pid:02x}")
    if not 2 <= length <= MAX_PAYLOAD + 2:
        raise FrameError(f"bad frame length {length}")
    return pid, length


def decode_frame(data: bytes, *, address: int = DEFAULT_ADDRESS) -> Frame:
    """Decode exactly one frame; any deviation raises :class:`FrameError`."""
    pid, length = _parse_header(data[:HEADER_LEN], address)
    expected = HEADER_LEN + length
    if len(data) != expected:
        raise FrameError(f"frame is {len(data)} bytes, header says {expected}")
    payload = bytes(data[HEADER_LEN:-2])
    (got_sum,) = struct.unpack(">H", data[-2:])
    if got_sum != checksum(pid, payload):
        raise FrameError("frame checksum does not match")
    return Frame(pid=pid, payload=payload, address=address)


class SerialLike(Protocol):
    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


def _read_exact(port: SerialLike, n: int, deadline: float, clock: Callable[[], float]) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = port.read(n - len(buf))
        if chunk:
            buf.extend(chunk)
        elif clock() >= deadline:
            break
    return bytes(buf)


def read_frame(
    port: SerialLike,
    *,
    address: int = DEFAULT_ADDRESS,
    timeout: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> Frame:
    """Read one frame from ``port`` within ``timeout`` seconds."""
    deadline = clock() + timeout
    head = _read_exact(port, HEADER_LEN, deadline, clock)
    if not head:
        raise FingerprintUnavailable(
            "The fingerprint sensor did not answer; check that it is plugged in, then retry."
        )
    _, length = _parse_header(head, address)
    rest = _read_exact(port, length, deadline, clock)
    return decode_frame(head + rest, address=address)


def _error_for(code: int, action: str) -> FingerprintError:
    message = f"Fingerprint sensor: {action} failed: {_MESSAGES.get(code, f'error code 0x{code:02x}')}."
    if code == CC_NO_FINGER:
        return NoFinger(message)
    if code == CC_COMBINE_FAIL:
        return EnrollMismatch(message)
    if code in (CC_ENROLL_FAIL, CC_DISORDERED, CC_FEW_POINTS, CC_NO_IMAGE):
        return CaptureFailed(message)
    if code == CC_PACKET_ERROR:
        return FrameError(message)
    return FingerprintRejected(message)


@dataclass(frozen=True)
class Match:
    slot: int
    score: int


@dataclass(frozen=True)
class SystemParameters:
    """What ReadSysPara reports."""

    status: int
    system_id: int
    capacity: int
    security_level: int
    address: int
    packet_size: int  # bytes per data packet
    baudrate: int


class R30xSensor(FingerprintSensor):
    """Client for an R30x sensor on ``url`` (any pyserial URL; 57600 baud 8N1 by default)."""

    kind = "r30x"

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        address: int = DEFAULT_ADDRESS,
        password: int = 0,
        capacity: int = 1000,
        timeout: float = 2.0,
        finger_timeout: float = 10.0,
        serial_for_url: Callable[..., Any] = serial.serial_for_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.address = address
        self._password = password
        self.capacity = capacity
        self.timeout = timeout
        self.finger_timeout = finger_timeout
        self._serial_for_url = serial_for_url
        self._clock = clock
        self._port: SerialLike | None = None

    def __repr__(self) -> str:
        return f"R30xSensor(url={self.url!r}, address=0x{self.address:08x}, open={self._port is not None})"

    # --- connection ------------------------------------------------------------------------------

    def open(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = self._serial_for_url(self.url, baudrate=self.baudrate, timeout=0.1, write_timeout=2)
        except PORT_ERRORS as exc:
            raise FingerprintUnavailable(
                f"Cannot open the fingerprint sensor port {self.url}: {exc}. Check the cable and the "
                "[fingerprint] url setting."
            ) from exc
        try:
            self.verify_password()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except PORT_ERRORS:  # already gone
                pass

    def _command(self, code: int, params: bytes = b"", *, action: str) -> tuple[int, bytes]:
        """Send one command, return (confirmation code, rest of the ack payload)."""
        if self._port is None:
            self.open()
        port = self._port
        assert port is not None
        try:
            port.reset_input_buffer()
            port.write(encode_frame(PID_COMMAND, bytes([code]) + params, self.address))
            frame = read_frame(port, address=self.address, timeout=self.timeout, clock=self._clock)
        except FrameError:
            self._drain()
            raise
        except TransientHardwareError:
            self.close()
            raise
        except PORT_ERRORS as exc:
            self.close()
            raise FingerprintUnavailable(
                f"Lost the fingerprint sensor during {action}; check that it is plugged in, then retry."
            ) from exc
        if frame.pid != PID_ACK or not frame.payload:
            raise FrameError(f"Fingerprint sensor sent packet type 0x{frame.pid:02x} instead of an ack.")
        return frame.payload[0], frame.payload[1:]

    def _drain(self) -> None:
        if self._port is not None:
            try:
                self._port.reset_input_buffer()
            except PORT_ERRORS:
                self.close()

    def _checked(self, code: int, params: bytes = b"", *, action: str) -> bytes:
        conf, data = self._command(code, params, action=action)
        if conf != CC_OK:
            raise _error_for(conf, action)
        return data

    # --- primitive commands ----------------------------------------------------------------------

    def verify_password(self) -> None:
        self._checked(CMD_VFY_PWD, struct.pack(">I", self._password), action="password check")

    def gen_img(self) -> bool:
        """Take an image; True if a finger was on the sensor, False if not."""
        conf, _ = self._command(CMD_GEN_IMG, action="image capture")
        if conf == CC_NO_FINGER:
            return False
        if conf != CC_OK:
            raise _error_for(conf, "image capture")
        return True

    def img2tz(self, buffer_id: int) -> None:
        if buffer_id not in (1, 2):
            raise ValueError("buffer_id must be 1 or 2")
        self._checked(CMD_IMG2TZ, bytes([buffer_id]), action="feature extraction")

    def reg_model(self) -> None:
        self._checked(CMD_REG_MODEL, action="template merge")

    def store(self, slot: int, buffer_id: int = 1) -> None:
        self._check_slot(slot)
        self._checked(CMD_STORE, struct.pack(">BH", buffer_id, slot), action="template store")

    def search(self, buffer_id: int = 1, start: int = 0, count: int | None = None) -> Match | None:
        count = self.capacity - start if count is None else count
        conf, data = self._command(CMD_SEARCH, struct.pack(">BHH", buffer_id, start, count), action="search")
        if conf in (CC_NOT_FOUND, CC_NO_MATCH):
            return None
        if conf != CC_OK:
            raise _error_for(conf, "search")
        if len(data) < 4:
            raise FrameError("Fingerprint sensor sent a short search reply.")
        slot, score = struct.unpack(">HH", data[:4])
        return Match(slot=slot, score=score)

    def load(self, slot: int, buffer_id: int = 1) -> None:
        """Copy the template in ``slot`` into a char buffer (e.g. to :meth:`match` it)."""
        self._check_slot(slot)
        self._checked(CMD_LOAD_CHAR, struct.pack(">BH", buffer_id, slot), action="template load")

    def match(self) -> int | None:
        """Compare char buffers 1 and 2 on the sensor: the score, or None if they differ."""
        conf, data = self._command(CMD_MATCH, action="match")
        if conf == CC_NO_MATCH:
            return None
        if conf != CC_OK:
            raise _error_for(conf, "match")
        if len(data) < 2:
            raise FrameError("Fingerprint sensor sent a short match reply.")
        return int(struct.unpack(">H", data[:2])[0])

    def delete(self, slot: int, count: int = 1) -> None:
        """Delete ``count`` templates starting at ``slot``."""
        self._check_slot(slot)
        if count < 1 or slot + count > self.capacity:
            raise FingerprintRejected(f"Cannot delete {count} templates from slot {slot}.")
        self._checked(CMD_DELETE_CHAR, struct.pack(">HH", slot, count), action="template delete")

    def system_parameters(self) -> SystemParameters:
        data = self._checked(CMD_READ_SYS_PARA, action="parameter read")
        if len(data) < 16:
            raise FrameError("Fingerprint sensor sent a short parameter reply.")
        status, system_id, capacity, level, address, size_code, baud = struct.unpack(">HHHHIHH", data[:16])
        if size_code >= len(PACKET_SIZES):
            raise FrameError(f"Fingerprint sensor reported packet size code {size_code}.")
        return SystemParameters(
            status=status,
            system_id=system_id,
            capacity=capacity,
            security_level=level,
            address=address,
            packet_size=PACKET_SIZES[size_code],
            baudrate=baud * 9600,
        )

    def used_slots(self) -> list[int]:
        """Slots holding a template (ReadIndexTable, 256 slots a page)."""
        used: list[int] = []
        for page in range(-(-self.capacity // 256)):
            bitmap = self._checked(CMD_READ_INDEX, bytes([page]), action="index read")
            for i, byte in enumerate(bitmap[:32]):
                used.extend(page * 256 + i * 8 + bit for bit in range(8) if byte >> bit & 1)
        return [slot for slot in used if slot < self.capacity]

    def template_count(self) -> int:
        data = self._checked(CMD_TEMPLATE_NUM, action="template count")
        if len(data) < 2:
            raise FrameError("Fingerprint sensor sent a short template-count reply.")
        return int(struct.unpack(">H", data[:2])[0])

    def clear(self) -> None:
        self._checked(CMD_EMPTY, action="library clear")

    # --- high level ------------------------------------------------------------------------------

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.capacity:
            raise FingerprintRejected(f"Template slot {slot} is outside 0..{self.capacity - 1}.")

    def _wait_finger(self, present: bool) -> None:
        deadline = self._clock() + self.finger_timeout
        while True:
            if self.gen_img() == present:
                return
            if self._clock() >= deadline:
                if present:
                    raise NoFinger(
                        f"No finger on the sensor within {self.finger_timeout:g} s; "
                        "place a finger and try again."
                    )
                raise NoFinger(
                    f"The finger stayed on the sensor for {self.finger_timeout:g} s; "
                    "lift it and place it again."
                )

    def enroll(self, slot: int) -> None:
        """Two captures of the same finger (lifted in between), merged and stored in ``slot``."""
        self._check_slot(slot)
        self._wait_finger(True)
        self.img2tz(1)
        self._wait_finger(False)
        self._wait_finger(True)
        self.img2tz(2)
        self.reg_model()
        self.store(slot, 1)
        log.info("fingerprint template stored in slot %d", slot)

    def identify(self) -> int | None:
        match = self.identify_match()
        return None if match is None else match.slot

    def identify_match(self) -> Match | None:
        """Like :meth:`identify` but also returns the sensor's match score."""
        self._wait_finger(True)
        self.img2tz(1)
        return self.search(1)

    def info(self) -> dict[str, Any]:
        params = self.system_parameters()
        return {
            "kind": self.kind,
            "url": self.url,
            "templates": self.template_count(),
            "capacity": params.capacity,
            "security_level": params.security_level,
        }
