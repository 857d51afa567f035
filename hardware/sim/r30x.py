"""R30x fingerprint sensor simulator on a pty (or TCP).

A "finger" is just a name.  Put one on the sensor with ``sim.finger = "alice"``
(``None`` lifts it), or queue a sequence of presses with :meth:`R30xSim.queue_fingers`,
each consumed by one GenImg.  Stored templates are the finger names.

It reads a byte stream, not whole writes: a command may arrive in any pieces
(pyfingerprint writes one byte at a time), and noise before a frame is skipped up to
the next ``EF 01``.  It implements every command pyfingerprint 1.5 uses, with the
confirmation codes of the ZhianTec R30x datasheet: VfyPwd, SetPwd, SetAdder,
SetSysPara, ReadSysPara, ReadIndexTable, TempleteNum, GenImg, UpImage, Img2Tz,
RegModel, Store, Search, LoadChar, DeletChar, Empty, Match, GetRandomCode, UpChar and
DownChar (the last three move data packets of ``packet_size`` bytes).  Character
files and images it sends are derived from the finger's name: filler, never biometric.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable

from PIL import Image, ImageDraw

from hardware.errors import FrameError
from hardware.fingerprint.r30x import (
    CC_BAD_REGISTER,
    CC_BAD_SLOT,
    CC_COMBINE_FAIL,
    CC_DELETE_FAIL,
    CC_ENROLL_FAIL,
    CC_FEW_POINTS,
    CC_NO_FINGER,
    CC_NO_IMAGE,
    CC_NO_MATCH,
    CC_NOT_FOUND,
    CC_OK,
    CC_PACKET_ERROR,
    CC_READ_TEMPLATE,
    CC_UP_CHAR_FAIL,
    CC_UP_IMAGE_FAIL,
    CC_WRONG_PASSWORD,
    CMD_DELETE_CHAR,
    CMD_DOWN_CHAR,
    CMD_EMPTY,
    CMD_GEN_IMG,
    CMD_GET_RANDOM,
    CMD_IMG2TZ,
    CMD_LOAD_CHAR,
    CMD_MATCH,
    CMD_READ_INDEX,
    CMD_READ_SYS_PARA,
    CMD_REG_MODEL,
    CMD_SEARCH,
    CMD_SET_ADDER,
    CMD_SET_PWD,
    CMD_SET_SYS_PARA,
    CMD_STORE,
    CMD_TEMPLATE_NUM,
    CMD_UP_CHAR,
    CMD_UP_IMAGE,
    CMD_VFY_PWD,
    DEFAULT_ADDRESS,
    HEADER,
    HEADER_LEN,
    MAX_PAYLOAD,
    PACKET_IDS,
    PACKET_SIZES,
    PID_ACK,
    PID_COMMAND,
    PID_DATA,
    PID_END_DATA,
    decode_frame,
    encode_frame,
)
from hardware.sim._stream import StreamSim, Transport

CHAR_LEN = 512  # bytes in a character file / template (UpChar, DownChar)
IMAGE_SIZE = (256, 288)  # UpImage: 4 bits a pixel, two pixels a byte
SYSTEM_ID = 0x0009
_MARK = b"R30XSIM\x00"

Params = bytes
Handler = Callable[[Params], bytes]


def features(finger: str) -> bytes:
    """The character file the simulator makes for ``finger``: 512 bytes, the name inside."""
    name = finger.encode("utf-8")[: CHAR_LEN - 48]
    body = _MARK + hashlib.sha256(name).digest() + struct.pack(">H", len(name)) + name
    return body.ljust(CHAR_LEN, b"\x00")


def finger_image(finger: str) -> Image.Image:
    """A 256x288 grey image of rings placed by the finger's name (filler, not a fingerprint)."""
    seed = hashlib.sha256(finger.encode("utf-8")).digest()
    img = Image.new("L", IMAGE_SIZE, 255)
    draw = ImageDraw.Draw(img)
    cx, cy = 80 + seed[0] % 96, 96 + seed[1] % 96
    for r in range(150, 4, -7 - seed[2] % 3):
        draw.ellipse((cx - r, cy - r * 1.2, cx + r, cy + r * 1.2), outline=40, width=3)
    return img


def _pack_nibbles(img: Image.Image) -> bytes:
    raw = img.tobytes()
    return bytes((hi & 0xF0) | (lo >> 4) for hi, lo in zip(raw[0::2], raw[1::2], strict=True))


class R30xSim(StreamSim):
    name = "r30x"

    def __init__(
        self,
        *,
        transport: Transport = "pty",
        port: int = 0,
        address: int = DEFAULT_ADDRESS,
        password: int = 0,
        capacity: int = 1000,
        score: int = 120,
        security_level: int = 3,
        packet_size: int = 128,
    ) -> None:
        super().__init__(transport=transport, port=port)
        if packet_size not in PACKET_SIZES:
            raise ValueError(f"packet_size must be one of {PACKET_SIZES}")
        self.address = address
        self.password = password
        self.capacity = capacity
        self.score = score
        self.security_level = security_level
        self.packet_size = packet_size
        self.baud_factor = 6  # 57600 = 6 x 9600
        self.finger: str | None = None
        self.templates: dict[int, str] = {}
        #: every command code received, in order
        self.commands: list[int] = []
        self.bad_frames = 0
        self._presses: deque[str | None] = deque()
        self._image: str | None = None
        self._char: dict[int, str | None] = {1: None, 2: None}
        self._blobs: dict[str, bytes] = {}  # character files uploaded by the host, by identity
        self._download: tuple[int, bytearray] | None = None  # DownChar in progress
        self._buf = bytearray()
        self._handlers: dict[int, Handler] = {
            CMD_VFY_PWD: self._vfy_pwd,
            CMD_SET_PWD: self._set_pwd,
            CMD_SET_ADDER: self._set_adder,
            CMD_SET_SYS_PARA: self._set_sys_para,
            CMD_READ_SYS_PARA: self._read_sys_para,
            CMD_READ_INDEX: self._read_index,
            CMD_TEMPLATE_NUM: lambda p: self._reply(CC_OK, struct.pack(">H", len(self.templates))),
            CMD_GEN_IMG: self._gen_img,
            CMD_UP_IMAGE: self._up_image,
            CMD_IMG2TZ: self._img2tz,
            CMD_REG_MODEL: self._reg_model,
            CMD_MATCH: self._match,
            CMD_STORE: self._store,
            CMD_SEARCH: self._search,
            CMD_LOAD_CHAR: self._load_char,
            CMD_DELETE_CHAR: self._delete_char,
            CMD_EMPTY: self._empty,
            CMD_GET_RANDOM: lambda p: self._reply(CC_OK, os.urandom(4)),
            CMD_UP_CHAR: self._up_char,
            CMD_DOWN_CHAR: self._down_char,
        }

    def queue_fingers(self, presses: list[str | None]) -> None:
        """Each GenImg consumes one entry (a finger name, or None for 'no finger')."""
        with self._lock:
            self._presses.extend(presses)

    # --- framing ---------------------------------------------------------------------------------

    def _next_frame(self) -> bytes | None:
        """Cut the next whole frame off the input buffer (None: wait for more bytes)."""
        buf = self._buf
        while True:
            start = buf.find(HEADER)
            if start < 0:
                keep = 1 if buf[-1:] == HEADER[:1] else 0  # an EF alone may be the start of a frame
                del buf[: len(buf) - keep]
                return None
            del buf[:start]
            if len(buf) < HEADER_LEN:
                return None
            length = struct.unpack(">H", buf[7:9])[0]
            if buf[6] not in PACKET_IDS or not 2 <= length <= MAX_PAYLOAD + 2:
                self.bad_frames += 1
                del buf[:1]  # not a frame after all: look for the next EF 01
                continue
            total = HEADER_LEN + length
            if len(buf) < total:
                return None
            raw = bytes(buf[:total])
            del buf[:total]
            return raw

    def handle(self, data: bytes) -> bytes:
        self._buf.extend(data)
        out = bytearray()
        while (raw := self._next_frame()) is not None:
            try:
                frame = decode_frame(raw, address=self.address)
            except FrameError:
                self.bad_frames += 1
                self._download = None
                out += self._reply(CC_PACKET_ERROR)
                continue
            if frame.pid in (PID_DATA, PID_END_DATA):
                self._data_packet(frame.pid, frame.payload)  # the sensor does not ack data packets
            elif frame.pid != PID_COMMAND or not frame.payload:
                out += self._reply(CC_PACKET_ERROR)
            else:
                out += self._command(frame.payload[0], frame.payload[1:])
        return bytes(out)

    def _reply(self, conf: int, data: bytes = b"", *, packets: bytes | None = None) -> bytes:
        """An ack frame (and the data packets that follow it, if any), spoiled per fail mode."""
        mode = self.fail_mode
        if mode == "silent":
            return b""
        if mode == "garbage":
            return b"\x55\xaa\x00garbage\xff" * 2
        frame = encode_frame(PID_ACK, bytes([conf]) + data, self.address)
        if mode == "bad_checksum":
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        if packets is None:
            return frame
        chunks = [packets[i : i + self.packet_size] for i in range(0, len(packets), self.packet_size)]
        out = bytearray(frame)
        for n, chunk in enumerate(chunks):
            pid = PID_END_DATA if n == len(chunks) - 1 else PID_DATA
            out += encode_frame(pid, chunk, self.address)
        return bytes(out)

    def _command(self, code: int, params: bytes) -> bytes:
        with self._lock:
            self.commands.append(code)
            self._download = None
            if self.fail_mode == "busy":
                return self._reply(CC_PACKET_ERROR)
            handler = self._handlers.get(code)
            if handler is None:
                return self._reply(CC_PACKET_ERROR)
            return handler(params)

    # --- character files -------------------------------------------------------------------------

    def _identity(self, char: bytes) -> str:
        """The finger a character file stands for (a name, or ``raw:<hash>`` for other data)."""
        if char.startswith(_MARK) and len(char) >= 42:
            (n,) = struct.unpack(">H", char[40:42])
            name = char[42 : 42 + n]
            if (
                hashlib.sha256(name).digest() == char[8:40]
                and features(name.decode("utf-8", "replace")) == char
            ):
                return name.decode("utf-8")
        identity = "raw:" + hashlib.sha256(char).hexdigest()[:16]
        self._blobs[identity] = char
        return identity

    def _char_bytes(self, identity: str) -> bytes:
        return self._blobs.get(identity) or features(identity)

    def _data_packet(self, pid: int, payload: bytes) -> None:
        with self._lock:
            if self._download is None:
                return
            buffer_id, data = self._download
            data.extend(payload)
            if pid == PID_END_DATA:
                self._download = None
                self._char[buffer_id] = self._identity(bytes(data))

    # --- commands --------------------------------------------------------------------------------

    def _vfy_pwd(self, p: Params) -> bytes:
        ok = len(p) == 4 and struct.unpack(">I", p)[0] == self.password
        return self._reply(CC_OK if ok else CC_WRONG_PASSWORD)

    def _set_pwd(self, p: Params) -> bytes:
        if len(p) != 4:
            return self._reply(CC_PACKET_ERROR)
        self.password = struct.unpack(">I", p)[0]
        return self._reply(CC_OK)

    def _set_adder(self, p: Params) -> bytes:
        if len(p) != 4:
            return self._reply(CC_PACKET_ERROR)
        self.address = struct.unpack(">I", p)[0]
        return self._reply(CC_OK)  # the ack already comes from the new address

    def _set_sys_para(self, p: Params) -> bytes:
        if len(p) != 2:
            return self._reply(CC_PACKET_ERROR)
        register, value = p
        if register == 4 and 1 <= value <= 12:
            self.baud_factor = value
        elif register == 5 and 1 <= value <= 5:
            self.security_level = value
        elif register == 6 and value < len(PACKET_SIZES):
            self.packet_size = PACKET_SIZES[value]
        else:
            return self._reply(CC_BAD_REGISTER)
        return self._reply(CC_OK)

    def _read_sys_para(self, p: Params) -> bytes:
        data = struct.pack(
            ">HHHHIHH",
            0,  # status register: not busy, no pass, no image
            SYSTEM_ID,
            self.capacity,
            self.security_level,
            self.address,
            PACKET_SIZES.index(self.packet_size),
            self.baud_factor,
        )
        return self._reply(CC_OK, data)

    def _read_index(self, p: Params) -> bytes:
        if len(p) != 1 or p[0] > 3:
            return self._reply(CC_BAD_SLOT)
        bitmap = bytearray(32)
        for slot in self.templates:
            offset = slot - p[0] * 256
            if 0 <= offset < 256:
                bitmap[offset // 8] |= 1 << (offset % 8)
        return self._reply(CC_OK, bytes(bitmap))

    def _gen_img(self, p: Params) -> bytes:
        finger = self._presses.popleft() if self._presses else self.finger
        if finger is None:
            return self._reply(CC_NO_FINGER)
        if self.fail_mode == "image_fail":
            return self._reply(CC_ENROLL_FAIL)
        self._image = finger
        return self._reply(CC_OK)

    def _up_image(self, p: Params) -> bytes:
        if self._image is None:
            return self._reply(CC_UP_IMAGE_FAIL)
        return self._reply(CC_OK, packets=_pack_nibbles(finger_image(self._image)))

    def _img2tz(self, p: Params) -> bytes:
        if len(p) != 1 or p[0] not in (1, 2):
            return self._reply(CC_PACKET_ERROR)
        if self._image is None:
            return self._reply(CC_NO_IMAGE)
        if self.fail_mode == "poor_image":
            return self._reply(CC_FEW_POINTS)
        self._char[p[0]] = self._image
        return self._reply(CC_OK)

    def _reg_model(self, p: Params) -> bytes:
        a, b = self._char[1], self._char[2]
        if a is None or a != b:
            return self._reply(CC_COMBINE_FAIL)
        return self._reply(CC_OK)  # the template is now in both buffers

    def _match(self, p: Params) -> bytes:
        a, b = self._char[1], self._char[2]
        if a is None or a != b:
            return self._reply(CC_NO_MATCH, b"\x00\x00")
        return self._reply(CC_OK, struct.pack(">H", self.score))

    def _store(self, p: Params) -> bytes:
        if len(p) != 3 or p[0] not in (1, 2):
            return self._reply(CC_PACKET_ERROR)
        buffer_id, slot = struct.unpack(">BH", p)
        if slot >= self.capacity:
            return self._reply(CC_BAD_SLOT)
        template = self._char[buffer_id]
        if template is None:
            return self._reply(CC_NO_IMAGE)  # nothing was ever converted into that buffer
        self.templates[slot] = template
        return self._reply(CC_OK)

    def _search(self, p: Params) -> bytes:
        if len(p) != 5 or p[0] not in (1, 2):
            return self._reply(CC_PACKET_ERROR)
        buffer_id, start, count = struct.unpack(">BHH", p)
        wanted = self._char[buffer_id]
        for slot in sorted(self.templates):
            if wanted is not None and start <= slot < start + count and self.templates[slot] == wanted:
                return self._reply(CC_OK, struct.pack(">HH", slot, self.score))
        return self._reply(CC_NOT_FOUND, b"\x00\x00\x00\x00")

    def _load_char(self, p: Params) -> bytes:
        if len(p) != 3 or p[0] not in (1, 2):
            return self._reply(CC_PACKET_ERROR)
        buffer_id, slot = struct.unpack(">BH", p)
        if slot >= self.capacity:
            return self._reply(CC_BAD_SLOT)
        if slot not in self.templates:
            return self._reply(CC_READ_TEMPLATE)
        self._char[buffer_id] = self.templates[slot]
        return self._reply(CC_OK)

    def _delete_char(self, p: Params) -> bytes:
        if len(p) != 4:
            return self._reply(CC_PACKET_ERROR)
        start, count = struct.unpack(">HH", p)
        if start >= self.capacity or start + count > self.capacity:
            return self._reply(CC_BAD_SLOT)
        if count == 0:
            return self._reply(CC_DELETE_FAIL)
        for slot in range(start, start + count):
            self.templates.pop(slot, None)
        return self._reply(CC_OK)

    def _empty(self, p: Params) -> bytes:
        self.templates.clear()
        return self._reply(CC_OK)

    def _up_char(self, p: Params) -> bytes:
        if len(p) != 1 or p[0] not in (1, 2):
            return self._reply(CC_PACKET_ERROR)
        identity = self._char[p[0]]
        if identity is None:
            return self._reply(CC_UP_CHAR_FAIL)
        return self._reply(CC_OK, packets=self._char_bytes(identity))

    def _down_char(self, p: Params) -> bytes:
        if len(p) != 1 or p[0] not in (1, 2):
            return self._reply(CC_PACKET_ERROR)
        reply = self._reply(CC_OK)
        self._download = (p[0], bytearray())  # data packets follow, unanswered
        return reply
