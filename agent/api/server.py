"""Running the local API: uvicorn in a thread, stopped by an event.

``serve`` is what ``kiosk-agent run`` calls (in its own thread); ``ApiServer``
wraps it for tests and the demo. uvicorn never installs signal handlers here:
the runner owns SIGTERM/Ctrl-C and sets ``stop``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the runner owns the signals
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._ready.set()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one); raises OSError if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every keep-alive response waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(
    app: Any,
    host: str,
    port: int,
    ready: threading.Event,
    stop: threading.Event,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` until ``stop`` is set (blocking). ``ready`` is set once it accepts connections.

    In-flight requests get up to 5 s to finish after ``stop``.
    """
    sock = sock if sock is not None else bind(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,  # our logging; uvicorn's loggers propagate to the agent's file
        access_log=False,  # URLs may carry a searched token; keep them out of the log
        lifespan="off",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = _Server(config, ready)

    def _watch() -> None:
        stop.wait()
        server.should_exit = True

    watcher = threading.Thread(target=_watch, name="api-stop", daemon=True)
    watcher.start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()  # also ends the watcher if uvicorn stopped on its own
        sock.close()
    log.info("local API stopped")


class ApiServer:
    """``serve`` in a daemon thread: ``start()`` returns once it accepts connections."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.sock = bind(host, port)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=serve,
            args=(app, host, self.port, self.ready, self.stopping),
            kwargs={"sock": self.sock},
            name="local-api",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ApiServer:
        self.thread.start()
        if not self.ready.wait(timeout) or self.stopping.is_set():
            self.stop()
            raise RuntimeError("the local API did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
