"""UIDAI RD service simulator on 127.0.0.1: RDSERVICE, DEVICEINFO and CAPTURE over HTTP or HTTPS.

As a real RD service does, it:

* validates the CAPTURE body's PidOptions and answers the specification's errCode
  for a bad one (see :func:`check_pid_options`) inside an HTTP 200 ``<PidData>``;
* answers a browser's CORS preflight (``OPTIONS`` with ``Access-Control-Allow-*``
  headers) and puts ``Access-Control-Allow-Origin`` on every reply;
* serves HTTPS with ``scheme="https"``: a throwaway self-signed certificate for
  127.0.0.1 / localhost is made at start (nothing is kept on disk).

``fail_mode`` (settable while running; ``hardware.sim.modes.RDSERVICE_FAIL_MODES`` is the
list ``--help`` and the README show):

* ``"used"`` -- RDSERVICE says ``USED`` and CAPTURE answers errCode 710 (another application)
* ``"busy"`` -- RDSERVICE says READY but CAPTURE answers errCode 710
* ``"reinit"`` -- CAPTURE answers errCode 740 (device needs to be re-initialised)
* ``"not_ready"`` -- RDSERVICE says ``NOTREADY`` and CAPTURE answers errCode 720
* ``"timeout"`` -- CAPTURE answers errCode 700 (capture timed out)
* ``"capture_failed"`` -- CAPTURE answers errCode 730
* ``"internal"`` -- CAPTURE answers errCode 999
* ``"slow"`` -- every reply waits ``delay`` seconds first
* ``"oversized"`` -- CAPTURE streams ``oversize_bytes`` of XML (no Content-Length)
* ``"entity"`` -- replies carry a "billion laughs" DTD
* ``"garbage"`` -- replies are not XML

The PID block it returns is random filler, not biometric data.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal, Self
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hardware._lifecycle import StartStop
from hardware.fingerprint.rdcodes import (
    ERR_BUSY,
    ERR_CAPTURE_FAILED,
    ERR_CAPTURE_TIMEOUT,
    ERR_FCOUNT,
    ERR_FORMAT,
    ERR_FTYPE,
    ERR_ICOUNT,
    ERR_INTERNAL,
    ERR_INVALID_OPTIONS,
    ERR_NEEDS_REINIT,
    ERR_NO_IRIS,
    ERR_NOT_READY,
    ERR_PIDVER,
    ERR_POSH,
    ERR_PROTOBUF,
    ERR_TIMEOUT_VALUE,
    SPEC_TEXT,
)

log = logging.getLogger(__name__)

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10)
    )
    + ']>\n<RDService status="READY" info="&lol9;"/>'
)

_CAPTURE_ERRORS = {
    "used": ERR_BUSY,
    "busy": ERR_BUSY,
    "reinit": ERR_NEEDS_REINIT,
    "timeout": ERR_CAPTURE_TIMEOUT,
    "not_ready": ERR_NOT_READY,
    "capture_failed": ERR_CAPTURE_FAILED,
    "internal": ERR_INTERNAL,
}
_STATUS = {"used": "USED", "not_ready": "NOTREADY"}

FINGER_POSITIONS = frozenset(
    f"{side}_{finger}"
    for side in ("LEFT", "RIGHT")
    for finger in ("THUMB", "INDEX", "MIDDLE", "RING", "LITTLE")
)
CORS_METHODS = "RDSERVICE, DEVICEINFO, CAPTURE, GET, POST, OPTIONS"

Scheme = Literal["http", "https"]


def _count(value: str | None) -> int | None:
    """A count attribute: empty means 0; anything but 1-2 digits is invalid (None)."""
    value = (value or "").strip()
    if not value:
        return 0
    return int(value) if value.isdigit() and len(value) <= 2 else None


def _check_posh(posh: str, f_count: int) -> bool:
    if posh in ("", "UNKNOWN"):
        return True
    names = posh.split(",")
    return len(names) == f_count and len(set(names)) == len(names) and set(names) <= FINGER_POSITIONS


def _check_wadh(wadh: str) -> bool:
    if not wadh:
        return True
    try:
        return len(base64.b64decode(wadh, validate=True)) == 32  # a SHA-256, base64
    except ValueError:
        return False


def check_pid_options(body: str) -> int:
    """The errCode a fingerprint-only RD service gives these PidOptions (0: acceptable).

    In the order a real service checks them: the XML and ``ver`` (100), ``format``
    (190; 1 = protobuf is not offered here: 210), ``pidVer`` (150), ``fType`` (110),
    ``fCount`` (120), ``iCount`` (140; iris asked of a finger device: 760), ``pCount``
    (100), ``timeout`` (160), ``posh`` (170), ``env`` and ``wadh`` (100).
    """
    try:
        root = SafeET.fromstring(body.strip(), forbid_dtd=True)
    except (ParseError, defusedxml.DefusedXmlException):
        return ERR_INVALID_OPTIONS
    opts = root.find("Opts")
    if root.tag != "PidOptions" or root.get("ver") != "1.0" or opts is None:
        return ERR_INVALID_OPTIONS
    a = opts.attrib
    fmt = a.get("format", "0").strip() or "0"
    if fmt not in ("0", "1"):
        return ERR_FORMAT
    if fmt == "1":
        return ERR_PROTOBUF
    if a.get("pidVer", "").strip() != "2.0":
        return ERR_PIDVER
    if a.get("fType", "").strip() not in ("0", "1", "2"):
        return ERR_FTYPE
    f_count = _count(a.get("fCount"))
    if f_count is None or not 1 <= f_count <= 10:
        return ERR_FCOUNT
    i_count = _count(a.get("iCount"))
    if i_count is None:
        return ERR_ICOUNT
    if i_count:
        return ERR_NO_IRIS
    if _count(a.get("pCount")) != 0:
        return ERR_INVALID_OPTIONS  # no face either
    timeout = a.get("timeout", "").strip()
    if timeout and not (timeout.isdigit() and len(timeout) <= 5 and int(timeout) > 0):
        return ERR_TIMEOUT_VALUE
    if not _check_posh(a.get("posh", "").strip(), f_count):
        return ERR_POSH
    if a.get("env", "P").strip() not in ("", "P", "PP", "S") or not _check_wadh(a.get("wadh", "").strip()):
        return ERR_INVALID_OPTIONS
    return 0


def self_signed_context(host: str = "127.0.0.1") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``host`` and localhost (1 day)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain wants files; they live milliseconds
        pem = Path(tmp) / "sim.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
        ctx.load_cert_chain(pem)
    return ctx


class RDServiceSim(StartStop):
    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        scheme: Scheme = "http",
        dp_id: str = "SIM.DeviceProvider",
        rds_id: str = "SIM.WIN.001",
        rds_ver: str = "1.0.4",
        mi: str = "SIM-FP-100",
        dc: str = "00000000-0000-0000-0000-000000000001",
        q_score: int = 78,
        delay: float = 3.0,
        oversize_bytes: int = 1024 * 1024,
        capture_path: str = "/rd/capture",
        info_path: str = "/rd/info",
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError("scheme must be 'http' or 'https'")
        self.host = host
        self.port = port
        self.scheme: Scheme = scheme
        self.dp_id, self.rds_id, self.rds_ver, self.mi, self.dc = dp_id, rds_id, rds_ver, mi, dc
        self.q_score = q_score
        self.delay = delay
        self.oversize_bytes = oversize_bytes
        #: the Interface paths RDSERVICE announces: relative ("/rd/capture") or absolute URLs
        self.capture_path, self.info_path = capture_path, info_path
        self.fail_mode: str | None = None
        #: (method, path, body) of every request, in order
        self.requests: list[tuple[str, str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"

    def start(self) -> Self:
        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        if self.scheme == "https":
            # the handshake happens in the request's own thread (Handler.setup), so a client that
            # connects and says nothing cannot hold up the accept loop
            self._server.socket = self_signed_context(self.host).wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
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

    def respond(self, method: str, path: str, body: str = "") -> tuple[int, bytes, bool]:
        """(HTTP status, body, stream-oversized?) for one request."""
        mode = self.fail_mode
        if mode == "entity":
            return 200, BILLION_LAUGHS.encode(), False
        if mode == "garbage":
            return 200, b"\x00\x01 this is not xml <<<", False
        if method == "RDSERVICE":
            status = _STATUS.get(mode or "", "READY")
            xml = (
                f'<?xml version="1.0"?><RDService status="{status}" info="Simulated RD service">'
                f'<Interface id="DEVICEINFO" path="{self.info_path}"/>'
                f'<Interface id="CAPTURE" path="{self.capture_path}"/></RDService>'
            )
            return 200, xml.encode(), False
        if method == "DEVICEINFO":
            return 200, self._device_info().encode(), False
        if method == "CAPTURE":
            code = check_pid_options(body)
            if code == 0 and mode == "oversized":
                return 200, b"", True
            code = code or _CAPTURE_ERRORS.get(mode or "", 0)
            return 200, self._pid_data(code).encode(), False
        return 405, b"", False

    def _device_info(self) -> str:
        mc = base64.b64encode(b"simulated device certificate").decode()
        return (
            f'<DeviceInfo dpId="{self.dp_id}" rdsId="{self.rds_id}" rdsVer="{self.rds_ver}" '
            f'mi="{self.mi}" mc="{mc}" dc="{self.dc}"><additional_info>'
            '<Param name="srno" value="SIM0001"/></additional_info></DeviceInfo>'
        )

    def _pid_data(self, code: int) -> str:
        if code:
            info = SPEC_TEXT.get(code, "Error")
            return f'<?xml version="1.0"?><PidData><Resp errCode="{code}" errInfo="{info}"/></PidData>'
        filler = base64.b64encode(os.urandom(96)).decode()
        return (
            '<?xml version="1.0"?><PidData>'
            '<Resp errCode="0" errInfo="Success" fCount="1" fType="2" nmPoints="36" '
            f'qScore="{self.q_score}"/>'
            + self._device_info()
            + f'<Skey ci="20991231">{filler}</Skey><Hmac>{filler[:44]}</Hmac>'
            f'<Data type="X">{filler}</Data></PidData>'
        )


class _Handler(BaseHTTPRequestHandler):
    """One request; ``sim`` is set on the subclass each simulator makes (:func:`_handler_for`)."""

    sim: RDServiceSim
    server_version = "SimRDService/1.0"
    timeout = 10  # seconds a silent connection is kept

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def handle(self) -> None:
        try:
            super().handle()
        except (ssl.SSLError, OSError) as exc:  # a plain-http probe of the https port, a hang-up
            log.debug("rdservice sim: connection dropped (%s)", type(exc).__name__)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("rdservice sim: " + format, *args)

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, 65536)).decode("utf-8", "replace") if length else ""

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
        self.send_header("Vary", "Origin")

    def do_OPTIONS(self) -> None:  # noqa: N802 - stdlib naming
        """CORS preflight, as RD services answer browsers."""
        self.sim.requests.append(("OPTIONS", self.path, ""))
        self.send_response(200)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", CORS_METHODS)
        wanted = self.headers.get("Access-Control-Request-Headers") or "Content-Type, Accept"
        self.send_header("Access-Control-Allow-Headers", wanted)
        if self.headers.get("Access-Control-Request-Private-Network") == "true":
            self.send_header("Access-Control-Allow-Private-Network", "true")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _handle(self) -> None:
        body = self._body()
        self.sim.requests.append((self.command, self.path, body))
        if self.sim.fail_mode == "slow" and self.sim._stopping.wait(self.sim.delay):
            return
        status, payload, stream = self.sim.respond(self.command, self.path, body)
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self._cors()
        if stream:
            self._stream_oversized()
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream_oversized(self) -> None:
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            chunk = b"<!-- " + b"x" * 16378 + b" -->"
            sent = 0
            while sent < self.sim.oversize_bytes and not self.sim._stopping.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client hung up, as it should
        self.close_connection = True

    do_RDSERVICE = _handle
    do_DEVICEINFO = _handle
    do_CAPTURE = _handle
    do_GET = _handle
    do_POST = _handle


def _handler_for(sim: RDServiceSim) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"sim": sim})
