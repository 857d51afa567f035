"""UIDAI RD service simulator: HTTP on 127.0.0.1 answering RDSERVICE, DEVICEINFO and CAPTURE.

``fail_mode`` (settable while running):

* ``"busy"`` -- CAPTURE answers errCode 710 (device used by another application)
* ``"timeout"`` -- CAPTURE answers errCode 700 (capture timed out)
* ``"not_ready"`` -- RDSERVICE says ``NOTREADY`` and CAPTURE answers errCode 720
* ``"capture_failed"`` -- CAPTURE answers errCode 730
* ``"slow"`` -- every reply waits ``delay`` seconds first
* ``"oversized"`` -- CAPTURE streams ``oversize_bytes`` of XML (no Content-Length)
* ``"entity"`` -- replies carry a "billion laughs" DTD
* ``"garbage"`` -- replies are not XML

The PID block it returns is random filler, not biometric data.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from hardware._lifecycle import StartStop

log = logging.getLogger(__name__)

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10)
    )
    + ']>\n<RDService status="READY" info="&lol9;"/>'
)

_CAPTURE_ERRORS = {
    "busy": (710, "Device is being used by another application"),
    "timeout": (700, "Capture timed out"),
    "not_ready": (720, "Device not ready"),
    "capture_failed": (730, "Capture failed"),
}


class RDServiceSim(StartStop):
    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        dp_id: str = "SIM.DeviceProvider",
        rds_id: str = "SIM.WIN.001",
        rds_ver: str = "1.0.4",
        mi: str = "SIM-FP-100",
        dc: str = "00000000-0000-0000-0000-000000000001",
        q_score: int = 78,
        delay: float = 3.0,
        oversize_bytes: int = 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.dp_id, self.rds_id, self.rds_ver, self.mi, self.dc = dp_id, rds_id, rds_ver, mi, dc
        self.q_score = q_score
        self.delay = delay
        self.oversize_bytes = oversize_bytes
        self.fail_mode: str | None = None
        #: (method, path, body) of every request, in order
        self.requests: list[tuple[str, str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> Self:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "SimRDService/1.0"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                log.debug("rdservice sim: " + format, *args)

            def _body(self) -> str:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, 65536)).decode("utf-8", "replace") if length else ""

            def _handle(self) -> None:
                body = self._body()
                sim.requests.append((self.command, self.path, body))
                if sim.fail_mode == "slow" and sim._stopping.wait(sim.delay):
                    return
                status, payload, stream = sim.respond(self.command, self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                if stream:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        chunk = b"<!-- " + b"x" * 16378 + b" -->"
                        sent = 0
                        while sent < sim.oversize_bytes and not sim._stopping.is_set():
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    except OSError:
                        pass  # the client hung up, as it should
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_RDSERVICE = _handle
            do_DEVICEINFO = _handle
            do_CAPTURE = _handle
            do_GET = _handle
            do_POST = _handle

        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="rdservice-sim",
            daemon=True,
        )
        self._thread.start()
        log.info("RD service simulator on %s", self.url)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # --- replies ---------------------------------------------------------------------------------

    def respond(self, method: str, path: str) -> tuple[int, bytes, bool]:
        """(HTTP status, body, stream-oversized?) for one request."""
        mode = self.fail_mode
        if mode == "entity":
            return 200, BILLION_LAUGHS.encode(), False
        if mode == "garbage":
            return 200, b"\x00\x01 this is not xml <<<", False
        if method == "RDSERVICE":
            status = "NOTREADY" if mode == "not_ready" else "READY"
            xml = (
                f'<?xml version="1.0"?><RDService status="{status}" info="Simulated RD service">'
                '<Interface id="DEVICEINFO" path="/rd/info"/>'
                '<Interface id="CAPTURE" path="/rd/capture"/></RDService>'
            )
            return 200, xml.encode(), False
        if method == "DEVICEINFO":
            return 200, self._device_info().encode(), False
        if method == "CAPTURE":
            if mode == "oversized":
                return 200, b"", True
            code, info = _CAPTURE_ERRORS.get(mode or "", (0, "Success"))
            return 200, self._pid_data(code, info).encode(), False
        return 405, b"", False

    def _device_info(self) -> str:
        mc = base64.b64encode(b"simulated device certificate").decode()
        return (
            f'<DeviceInfo dpId="{self.dp_id}" rdsId="{self.rds_id}" rdsVer="{self.rds_ver}" '
            f'mi="{self.mi}" mc="{mc}" dc="{self.dc}"><additional_info/></DeviceInfo>'
        )

    def _pid_data(self, code: int, info: str) -> str:
        if code:
            return f'<?xml version="1.0"?><PidData><Resp errCode="{code}" errInfo="{info}"/></PidData>'
        filler = base64.b64encode(os.urandom(96)).decode()
        return (
            '<?xml version="1.0"?><PidData>'
            f'<Resp errCode="0" errInfo="{info}" fCount="1" fType="2" nmPoints="36" qScore="{self.q_score}"/>'
            + self._device_info()
            + f'<Skey ci="20991231">{filler}</Skey><Hmac>{filler[:44]}</Hmac>'
            f'<Data type="X">{filler}</Data></PidData>'
        )
