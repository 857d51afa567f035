"""R30x fingerprint sensor simulator on a pty (or TCP).

A "finger" is just a name.  Put one on the sensor with ``sim.finger = "alice"``
(``None`` lifts it), or queue a sequence of presses with :meth:`R30xSim.queue_fingers`,
each consumed by one GenImg.  Stored templates are the finger names.

``fail_mode``: ``"garbage"`` (reply noise), ``"bad_checksum"`` (reply frames with a
wrong checksum), ``"silent"`` (never reply), ``"unplug"`` (vanish after
``unplug_after`` bytes), ``"busy"`` (every command answers 0x01 packet error).
"""

from __future__ import annotations

import struct
from collections import deque

from hardware.errors import FrameError
from hardware.fingerprint.r30x import (
    CC_BAD_SLOT,
    CC_COMBINE_FAIL,
    CC_NO_FINGER,
    CC_NO_IMAGE,
    CC_NOT_FOUND,
    CC_OK,
    CC_PACKET_ERROR,
    CC_WRONG_PASSWORD,
    CMD_EMPTY,
    CMD_GEN_IMG,
    CMD_IMG2TZ,
    CMD_REG_MODEL,
    CMD_SEARCH,
    CMD_STORE,
    CMD_TEMPLATE_NUM,
    CMD_VFY_PWD,
    DEFAULT_ADDRESS,
    HEADER,
    HEADER_LEN,
    PID_ACK,
    PID_COMMAND,
    decode_frame,
    encode_frame,
)
from hardware.sim._stream import StreamSim, Transport


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
    ) -> None:
        super().__init__(transport=transport, port=port)
        self.address = address
        self.password = password
        self.capacity = capacity
        self.score = score
        self.finger: str | None = None
        self.templates: dict[int, str] = {}
        #: every command code received, in order
        self.commands: list[int] = []
        self.bad_frames = 0
        self._presses: deque[str | None] = deque()
        self._image: str | None = None
        self._char: dict[int, str | None] = {1: None, 2: None}
        self._buf = bytearray()

    def queue_fingers(self, presses: list[str | None]) -> None:
        """Each GenImg consumes one entry (a finger name, or None for 'no finger')."""
        with self._lock:
            self._presses.extend(presses)

    def handle(self, data: bytes) -> bytes:
        self._buf.extend(data)
        out = bytearray()
        while True:
            start = self._buf.find(HEADER)
            if start < 0:
                self._buf.clear()
                break
            del self._buf[:start]
            if len(self._buf) < HEADER_LEN:
                break
            length = struct.unpack(">H", self._buf[7:9])[0]
            total = HEADER_LEN + length
            if len(self._buf) < total:
                break
            raw = bytes(self._buf[:total])
            del self._buf[:total]
            try:
                frame = decode_frame(raw, address=self.address)
            except FrameError:
                self.bad_frames += 1
                out += self._reply(CC_PACKET_ERROR)
                continue
            if frame.pid != PID_COMMAND or not frame.payload:
                out += self._reply(CC_PACKET_ERROR)
                continue
            out += self._command(frame.payload[0], frame.payload[1:])
        return bytes(out)

    def _reply(self, conf: int, data: bytes = b"") -> bytes:
        mode = self.fail_mode
        if mode == "silent":
            return b""
        if mode == "garbage":
            return b"\x55\xaa\x00garbage\xff" * 2
        frame = encode_frame(PID_ACK, bytes([conf]) + data, self.address)
        if mode == "bad_checksum":
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        return frame

    def _command(self, code: int, params: bytes) -> bytes:
        with self._lock:
            self.commands.append(code)
            if self.fail_mode == "busy":
                return self._reply(CC_PACKET_ERROR)
            if code == CMD_VFY_PWD:
                ok = len(params) == 4 and struct.unpack(">I", params)[0] == self.password
                return self._reply(CC_OK if ok else CC_WRONG_PASSWORD)
            if code == CMD_GEN_IMG:
                finger = self._presses.popleft() if self._presses else self.finger
                if finger is None:
                    return self._reply(CC_NO_FINGER)
                self._image = finger
                return self._reply(CC_OK)
            if code == CMD_IMG2TZ:
                if self._image is None or not params or params[0] not in (1, 2):
                    return self._reply(CC_NO_IMAGE)
                self._char[params[0]] = self._image
                return self._reply(CC_OK)
            if code == CMD_REG_MODEL:
                a, b = self._char[1], self._char[2]
                if a is None or a != b:
                    return self._reply(CC_COMBINE_FAIL)
                return self._reply(CC_OK)
            if code == CMD_STORE:
                if len(params) != 3:
                    return self._reply(CC_PACKET_ERROR)
                buffer_id, slot = struct.unpack(">BH", params)
                template = self._char.get(buffer_id)
                if slot >= self.capacity:
                    return self._reply(CC_BAD_SLOT)
                if template is None:
                    return self._reply(CC_NO_IMAGE)
                self.templates[slot] = template
                return self._reply(CC_OK)
            if code == CMD_SEARCH:
                if len(params) != 5:
                    return self._reply(CC_PACKET_ERROR)
                buffer_id, start, count = struct.unpack(">BHH", params)
                wanted = self._char.get(buffer_id)
                for slot in sorted(self.templates):
                    if start <= slot < start + count and self.templates[slot] == wanted:
                        return self._reply(CC_OK, struct.pack(">HH", slot, self.score))
                return self._reply(CC_NOT_FOUND, b"\x00\x00\x00\x00")
            if code == CMD_EMPTY:
                self.templates.clear()
                return self._reply(CC_OK)
            if code == CMD_TEMPLATE_NUM:
                return self._reply(CC_OK, struct.pack(">H", len(self.templates)))
            return self._reply(CC_PACKET_ERROR)
