"""A byte-stream device simulator on a real transport: a TCP listener or a pty.

One background thread owns every file descriptor: it accepts, reads, replies,
"unplugs" and "replugs".  Other threads ask it to do things through a wake-up
pipe and wait on events, so nothing races on a closed descriptor.

Data arrives as a byte stream in whatever pieces the transport delivers (a client
that writes one byte at a time is read one byte at a time): :meth:`StreamSim.handle`
gets each piece and must buffer partial commands itself.

Unplugging: ``fail_mode = "unplug"`` drops the line after ``unplug_after`` more bytes
(mid-job), as a pulled cable does.  With ``replug_after`` set (seconds), the device
comes back by itself that long after, as when the cable is pushed back in: on the
same TCP port, or on a new pty (:attr:`url` changes, as a USB serial device may come
back as another ``/dev/ttyUSBn``).  :meth:`replug` brings it back at once.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from typing import Literal, Self

from hardware._lifecycle import StartStop

log = logging.getLogger(__name__)

Transport = Literal["tcp", "pty"]


class StreamSim(StartStop):
    """Base class: subclasses implement :meth:`handle` (bytes in -> bytes to send back)."""

    name = "device"
    #: fail modes in which the device stops reading its line (a full receive buffer: busy)
    stall_modes: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        transport: Transport = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if transport not in ("tcp", "pty"):
            raise ValueError("transport must be 'tcp' or 'pty'")
        self.transport: Transport = transport
        self.host = host
        self.port = port
        self.path: str | None = None
        self._wake_r, self._wake_w = -1, -1
        self._fail_mode: str | None = None
        #: with ``fail_mode = "unplug"``: bytes accepted before the device disappears
        self.unplug_after: int = 0
        #: seconds after an unplug until the device comes back by itself (None: only :meth:`replug`)
        self.replug_after: float | None = None
        #: called (from the simulator thread) with the new :attr:`url` after each replug
        self.on_replug: Callable[[str], None] | None = None
        self.unplugged = False
        self.bytes_received = 0
        self._unplug_count = 0
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stop = False
        self._replug_requested = False
        self._replug_at: float | None = None
        self._clock = clock
        self._outbox = bytearray()
        self._budget_used = 0
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None

    # --- public API ------------------------------------------------------------------------------

    @property
    def fail_mode(self) -> str | None:
        """Set while running to make the device misbehave; the meaning depends on the subclass."""
        return self._fail_mode

    @fail_mode.setter
    def fail_mode(self, mode: str | None) -> None:
        with self._lock:
            old, self._fail_mode = self._fail_mode, mode
            if mode == "unplug":
                self._budget_used = 0  # "after N more bytes"
            if old != mode:
                self.on_fail_mode(old, mode)
        self._wake()  # a stalled line may start reading again

    @property
    def url(self) -> str:
        """A pyserial URL for the client: ``socket://host:port`` or the pty's slave path."""
        if self.transport == "tcp":
            return f"socket://{self.host}:{self.port}"
        assert self.path is not None, "simulator not started"
        return self.path

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._wake_r, self._wake_w = os.pipe()
        self._plug_in()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-sim", daemon=True)
        self._thread.start()
        log.info("%s simulator listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop = True
        self._wake()
        thread.join(timeout=5)
        self._thread = None
        self._unplug()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1

    @property
    def unplugs(self) -> int:
        """How many times the device has been unplugged since it started."""
        return self._unplug_count

    def unplug(self) -> None:
        """Disappear now, as if the cable was pulled (the client's next I/O fails)."""
        with self._lock:
            self.fail_mode = "unplug"
            self.unplug_after = 0
        self._wake()
        self.wait_for(lambda: self.unplugged, timeout=5)

    def replug(self, timeout: float = 5.0) -> None:
        """Come back after an unplug (TCP: same port; pty: a new pty, so :attr:`url` changes)."""
        with self._lock:
            self._replug_requested = True
        self._wake()
        self.wait_for(lambda: not self.unplugged, timeout=timeout)

    def wait_for(self, predicate: object, timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` is true (re-checked whenever the simulator changes state)."""
        assert callable(predicate)
        with self._changed:
            ok = self._changed.wait_for(predicate, timeout=timeout)
        if not ok:
            raise TimeoutError(f"{self.name} simulator: condition not met within {timeout} s")
        return bool(ok)

    # --- for subclasses --------------------------------------------------------------------------

    def handle(self, data: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_connect(self) -> None:
        """A client connected (TCP) -- reset per-connection state if needed."""

    def on_fail_mode(self, old: str | None, new: str | None) -> None:
        """The fail mode changed (called with the lock held, from any thread)."""

    def push(self, data: bytes) -> None:
        """Send ``data`` to the client unprompted (from any thread), e.g. an automatic status."""
        with self._lock:
            self._outbox.extend(data)
        self._wake()

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def send(self, data: bytes) -> None:
        """Write to the client now (from the simulator thread)."""
        if not data:
            return
        try:
            if self._conn is not None:
                self._conn.sendall(data)
            elif self._master is not None:
                self._write_pty(self._master, data)
        except OSError:
            log.debug("%s simulator: client went away while we replied", self.name)

    def _write_pty(self, fd: int, data: bytes, stall: float = 5.0) -> None:
        """Write all of ``data``; give up if the client reads nothing for ``stall`` seconds."""
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [fd], [], stall)
            if not writable:
                log.debug("%s simulator: the client stopped reading; reply dropped", self.name)
                return
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue

    # --- internals -------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")

    def _plug_in(self) -> None:
        if self.transport == "tcp":
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((self.host, self.port))
            lsock.listen(4)
            self.port = lsock.getsockname()[1]
            self._listener = lsock
        else:
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no CR/LF translation: a clean 8-bit line
            os.set_blocking(master, False)  # replies are written as the client drains them
            self._master, self._slave = master, slave
            self.path = os.ttyname(slave)
        with self._changed:
            self.unplugged = False
            self._changed.notify_all()

    def _unplug(self) -> None:
        for sock in (self._conn, self._listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self._conn = self._listener = None
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def _do_unplug(self) -> None:
        self._unplug()
        with self._changed:
            self.unplugged = True
            self._unplug_count += 1
            if self._fail_mode == "unplug":
                self._fail_mode = None
            if self.replug_after is not None:
                self._replug_at = self._clock() + self.replug_after
            self._changed.notify_all()
        log.info("%s simulator unplugged", self.name)

    def _housekeeping(self) -> float | None:
        """Replug / unplug / flush pushed bytes as due; return the select timeout (None: forever)."""
        with self._lock:
            due = self._replug_at is not None and self._clock() >= self._replug_at
            if (self._replug_requested or due) and self.unplugged:
                self._replug_requested = False
                self._replug_at = None
                self._plug_in()
                self._budget_used = 0
                if self.on_replug is not None:
                    self.on_replug(self.url)
            self._replug_requested = False
            unplug_due = self._fail_mode == "unplug" and self.unplug_after <= self._budget_used
            if unplug_due and not self.unplugged:
                self._do_unplug()
            if self._outbox and not self.unplugged:
                pending, self._outbox = bytes(self._outbox), bytearray()
                self.send(pending)
            if self._replug_at is None:
                return None
            return max(self._replug_at - self._clock(), 0.0)

    def _readable(self) -> list[int]:
        rlist: list[int] = [self._wake_r]
        if self._listener is not None:
            rlist.append(self._listener.fileno())
        if self._fail_mode in self.stall_modes:
            return rlist  # busy: the line is not read, so the client's writes back up
        if self._conn is not None:
            rlist.append(self._conn.fileno())
        if self._master is not None:
            rlist.append(self._master)
        return rlist

    def _accept(self) -> None:
        assert self._listener is not None
        conn, _ = self._listener.accept()
        conn.settimeout(5.0)  # a client that stops reading cannot wedge the simulator
        if self._conn is not None:
            self._conn.close()
        self._conn = conn
        self.on_connect()

    def _receive(self, ready: list[int]) -> bytes:
        """Read what the client sent (b"" if nothing, or the client went away)."""
        try:
            if self._conn is not None and self._conn.fileno() in ready:
                data = self._conn.recv(65536)
                if not data:
                    self._conn.close()
                    self._conn = None
                return data
            if self._master is not None and self._master in ready:
                return os.read(self._master, 65536)
        except OSError:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        return b""

    def _run(self) -> None:
        self._budget_used = 0
        while not self._stop:
            timeout = self._housekeeping()
            try:
                ready, _, _ = select.select(self._readable(), [], [], timeout)
            except (OSError, ValueError):
                continue
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
                continue
            if self._listener is not None and self._listener.fileno() in ready:
                self._accept()
                continue
            data = self._receive(ready)
            if not data:
                continue
            if self._fail_mode == "unplug":
                data = data[: max(self.unplug_after - self._budget_used, 0)]
                self._budget_used += len(data)
            self.bytes_received += len(data)
            reply = self.handle(data) if data else b""
            self.notify()  # before a long reply blocks on a client that waits to see its bytes taken
            self.send(reply)
            self.notify()
