"""Client for a UIDAI Registered Device (RD) service on 127.0.0.1.

The RD service listens on one of the ports 11100-11120 and speaks HTTP or HTTPS
(some services only the one, often with a self-signed certificate) with custom
methods: ``RDSERVICE`` (discovery: status ``READY``, ``USED`` or ``NOTREADY``
and the ``Interface`` paths, relative or absolute), ``DEVICEINFO`` and
``CAPTURE``.  Discovery tries http, then https, on each port.  A self-signed
certificate is accepted only from a loopback address (127.0.0.0/8, ::1,
localhost); anywhere else the certificate must verify.  Device errors come
inside HTTP 200 replies (``<Resp errCode="720" .../>``); :mod:`.rdcodes` turns
each documented family into our transient/permanent errors with an operator
message.

Replies are untrusted: they are read with a size cap and an overall deadline,
and parsed with defusedxml with DTDs forbidden (no entity expansion, no
external entities).  The PID block returned by CAPTURE is handed back to the
caller inside :class:`CaptureResult`, whose repr never shows it, and which
refuses to be pickled; it is never logged or stored here.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
import requests
from urllib3.exceptions import InsecureRequestWarning

from hardware.errors import (
    FingerprintProtocolError,
    FingerprintUnavailable,
    ResponseTooLarge,
    UnsafeXML,
)
from hardware.fingerprint.base import CaptureDevice
from hardware.fingerprint.rdcodes import (
    ERR_BUSY,
    ERR_CAPTURE_FAILED,
    ERR_CAPTURE_TIMEOUT,
    ERR_NEEDS_REINIT,
    ERR_NOT_READY,
    error_for,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS = range(11100, 11121)
MAX_RESPONSE_BYTES = 256 * 1024

SCHEMES = ("http", "https")
STATUSES = ("READY", "USED", "NOTREADY")
# "127.0.0.1:11100/rd/capture" or "/localhost:11100/capture": a host and port without a scheme
_BARE_HOST = re.compile(
    r"^/*(?P<host>127(?:\.\d{1,3}){3}|localhost|\[::1\]):(?P<port>\d{1,5})(?P<path>/.*)?$"
)

__all__ = [
    "ERR_BUSY",
    "ERR_CAPTURE_FAILED",
    "ERR_CAPTURE_TIMEOUT",
    "ERR_NEEDS_REINIT",
    "ERR_NOT_READY",
    "CaptureResult",
    "DeviceInfo",
    "PidOptions",
    "RDServiceClient",
    "RDServiceInfo",
    "is_loopback",
    "parse_ports",
]


def _netloc(host: str, port: int) -> str:
    return f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: where a self-signed certificate is acceptable."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_ports(spec: str | Iterable[int] | None) -> list[int]:
    """``"11100-11120"``, ``"11100,11105"`` or an iterable of ints -> unique ports, in the order given."""
    if spec is None:
        return list(DEFAULT_PORTS)
    ports: list[int] = []
    if not isinstance(spec, str):
        ports = [int(p) for p in spec]
    else:
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError(f"bad port range {part!r}")
                ports.extend(range(lo, hi + 1))
            else:
                ports.append(int(part))
    if not ports or not all(0 < p < 65536 for p in ports):
        raise ValueError(f"bad port list {spec!r}")
    return list(dict.fromkeys(ports))


@dataclass(frozen=True)
class RDServiceInfo:
    port: int
    status: str
    info: str
    paths: dict[str, str]
    scheme: str = "http"
    host: str = DEFAULT_HOST

    @property
    def ready(self) -> bool:
        return self.status.upper() == "READY"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{_netloc(self.host, self.port)}"

    def url_for(self, interface: str, default: str) -> str:
        """The URL of an ``Interface`` path, relative (``/rd/capture``, ``rd/capture``) or absolute
        (``http://127.0.0.1:11100/rd/capture``, ``127.0.0.1:11100/capture``).

        An absolute path must stay on this service's host: the PID block is not fetched from
        anywhere else.
        """
        path = (self.paths.get(interface) or default).strip()
        bare = _BARE_HOST.match(path)
        if bare:
            path = f"{self.scheme}://{bare['host']}:{bare['port']}{bare['path'] or '/'}"
        parts = urlsplit(path)
        if not parts.scheme:
            return self.base_url + (path if path.startswith("/") else "/" + path)
        if parts.scheme not in SCHEMES or parts.hostname is None:
            raise FingerprintProtocolError(f"The RD service's {interface} path is not an http(s) URL.")
        if parts.hostname != self.host.strip("[]") and not (
            is_loopback(parts.hostname) and is_loopback(self.host)
        ):
            raise FingerprintProtocolError(
                f"The RD service's {interface} path points at another host ({parts.hostname}); refused."
            )
        return path


@dataclass(frozen=True)
class DeviceInfo:
    dp_id: str
    rds_id: str
    rds_ver: str
    mi: str
    mc: str = field(repr=False)  # the device certificate: long, not secret, not useful in logs
    dc: str


class CaptureResult:
    """Outcome of a successful capture.  ``pid_xml`` is the encrypted PID block to forward.

    The repr shows only quality figures; pickling is refused so the block cannot
    end up in a queue, cache or crash dump by accident.
    """

    __slots__ = ("device", "err_code", "err_info", "f_count", "f_type", "nm_points", "q_score", "_pid_xml")

    def __init__(
        self,
        *,
        err_code: int,
        err_info: str,
        f_count: str,
        f_type: str,
        nm_points: str,
        q_score: str,
        pid_xml: str,
        device: DeviceInfo | None = None,
    ) -> None:
        #: the <DeviceInfo> inside the PidData (its dpId, rdsId, rdsVer, dc, mi, mc go in the auth request)
        self.device = device
        self.err_code = err_code
        self.err_info = err_info
        self.f_count = f_count
        self.f_type = f_type
        self.nm_points = nm_points
        self.q_score = q_score
        self._pid_xml = pid_xml

    @property
    def pid_xml(self) -> str:
        return self._pid_xml

    def summary(self) -> dict[str, Any]:
        """What may be shown or logged: no PID data."""
        out: dict[str, Any] = {
            "errCode": self.err_code,
            "errInfo": self.err_info,
            "fCount": self.f_count,
            "fType": self.f_type,
            "nmPoints": self.nm_points,
            "qScore": self.q_score,
        }
        if self.device is not None:
            dev = self.device
            out.update(dpId=dev.dp_id, rdsId=dev.rds_id, rdsVer=dev.rds_ver, mi=dev.mi, dc=dev.dc)
        return out

    def __repr__(self) -> str:
        hidden = f"<{len(self._pid_xml)} chars hidden>"
        return f"CaptureResult(errCode={self.err_code}, qScore={self.q_score!r}, pid={hidden})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("CaptureResult holds a biometric PID block and must not be pickled or stored")


@dataclass(frozen=True)
class PidOptions:
    f_count: int = 1
    f_type: int = 2  # 0 = FMR, 1 = FIR, 2 = FMR+FIR
    format: int = 0  # 0 = XML
    pid_ver: str = "2.0"
    timeout_ms: int = 10000
    env: str = "P"  # P = production, PP = pre-production, S = staging
    wadh: str = ""
    posh: str = "UNKNOWN"

    def to_xml(self) -> str:
        def esc(value: object) -> str:
            return (
                str(value)
                .replace("&", "&amp;")
                .replace('"', "&quot;")
                .replace("<", "&lt;")
                .replace(">", "&gt;")
            )

        return (
            '<?xml version="1.0"?><PidOptions ver="1.0">'
            f'<Opts fCount="{esc(self.f_count)}" fType="{esc(self.f_type)}" iCount="0" pCount="0" '
            f'format="{esc(self.format)}" pidVer="{esc(self.pid_ver)}" timeout="{esc(self.timeout_ms)}" '
            f'env="{esc(self.env)}" wadh="{esc(self.wadh)}" posh="{esc(self.posh)}"/>'
            "</PidOptions>"
        )


def _device_info(node: Element) -> DeviceInfo:
    return DeviceInfo(
        dp_id=node.get("dpId", ""),
        rds_id=node.get("rdsId", ""),
        rds_ver=node.get("rdsVer", ""),
        mi=node.get("mi", ""),
        mc=node.get("mc", ""),
        dc=node.get("dc", ""),
    )


class RDServiceClient(CaptureDevice):
    """Finds and talks to the RD service.  Inject ``session``, ``ports`` and ``clock`` in tests."""

    kind = "rdservice"

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        host: str = DEFAULT_HOST,
        ports: str | Iterable[int] | None = None,
        probe_timeout: float = 1.0,
        timeout: float = 5.0,
        max_bytes: int = MAX_RESPONSE_BYTES,
        options: PidOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session if session is not None else requests.Session()
        self.host = host
        self.ports = parse_ports(ports)
        self.probe_timeout = probe_timeout
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.options = options or PidOptions()
        self._clock = clock
        self._service: RDServiceInfo | None = None

    def __repr__(self) -> str:
        return f"RDServiceClient(host={self.host!r}, ports={self.ports[0]}..{self.ports[-1]})"

    # --- HTTP with caps --------------------------------------------------------------------------

    def _send(self, method: str, url: str, body: str | None, timeout: float) -> requests.Response:
        headers = {"Accept": "text/xml"}
        if body is not None:
            headers["Content-Type"] = "text/xml; charset=utf-8"
        host = urlsplit(url).hostname or ""
        # a self-signed certificate is fine from this machine's own RD service, never from elsewhere
        verify = not is_loopback(host)
        with warnings.catch_warnings():
            if not verify:
                warnings.simplefilter("ignore", InsecureRequestWarning)
            return self.session.request(
                method,
                url,
                data=body.encode() if body else None,
                headers=headers,
                timeout=timeout,
                stream=True,
                verify=verify,
            )

    def _request(self, method: str, url: str, *, body: str | None, timeout: float) -> bytes:
        port = urlsplit(url).port
        deadline = self._clock() + timeout
        try:
            resp = self._send(method, url, body, timeout)
        except requests.RequestException as exc:
            raise FingerprintUnavailable(
                f"The RD service on port {port} did not answer {method} ({type(exc).__name__}). "
                "Check that the device's RD service is installed and running."
            ) from exc
        with resp:
            if resp.status_code != 200:
                raise FingerprintProtocolError(
                    f"The RD service on port {port} answered HTTP {resp.status_code}."
                )
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise ResponseTooLarge(
                    f"The RD service's reply ({declared} bytes) exceeds the {self.max_bytes}-byte limit."
                )
            return self._read_capped(resp, method, timeout, deadline)

    def _read_capped(self, resp: requests.Response, method: str, timeout: float, deadline: float) -> bytes:
        buf = bytearray()
        try:
            for chunk in resp.iter_content(chunk_size=16384):
                buf.extend(chunk)
                if len(buf) > self.max_bytes:
                    raise ResponseTooLarge(
                        f"The RD service's reply exceeds the {self.max_bytes}-byte limit; refused."
                    )
                if self._clock() > deadline:
                    raise FingerprintUnavailable(
                        f"The RD service took longer than {timeout:g} s to answer {method}; retry."
                    )
        except requests.RequestException as exc:
            raise FingerprintUnavailable(
                f"The RD service's reply to {method} was cut off or too slow ({type(exc).__name__}); retry."
            ) from exc
        return bytes(buf)

    @staticmethod
    def _parse(raw: bytes, what: str) -> Element:
        try:
            root = SafeET.fromstring(raw.lstrip(b" \r\n\t"), forbid_dtd=True)
        except defusedxml.DefusedXmlException as exc:
            raise UnsafeXML(
                f"The {what} reply declared a DTD or entities ({type(exc).__name__}); refused as unsafe."
            ) from exc
        except ParseError as exc:
            raise FingerprintProtocolError(f"The {what} reply is not well-formed XML.") from exc
        return root

    # --- discovery -------------------------------------------------------------------------------

    def _probe_one(self, scheme: str, port: int) -> RDServiceInfo | None:
        try:
            raw = self._request(
                "RDSERVICE", f"{scheme}://{_netloc(self.host, port)}/", body=None, timeout=self.probe_timeout
            )
            root = self._parse(raw, "RDSERVICE")
        except (UnsafeXML, ResponseTooLarge):
            raise
        except (FingerprintUnavailable, FingerprintProtocolError):
            return None  # nothing there, or some other service on this port
        if root.tag != "RDService":
            return None
        paths = {
            (iface.get("id") or "").upper(): iface.get("path") or ""
            for iface in root.iter("Interface")
            if iface.get("id")
        }
        status = (root.get("status") or "UNKNOWN").strip().upper()
        return RDServiceInfo(
            port=port, status=status, info=root.get("info", ""), paths=paths, scheme=scheme, host=self.host
        )

    def probe(self, port: int) -> RDServiceInfo | None:
        """Ask one port for RDSERVICE over http, then https; None if nothing usable answers there."""
        for scheme in SCHEMES:
            svc = self._probe_one(scheme, port)
            if svc is not None:
                return svc
        return None

    def discover(self, *, refresh: bool = False) -> RDServiceInfo:
        """The first READY RD service on our ports (else the first one found: USED or NOTREADY)."""
        if self._service is not None and not refresh:
            return self._service
        found: list[RDServiceInfo] = []
        for port in self.ports:
            svc = self.probe(port)
            if svc is None:
                continue
            if svc.ready:
                found = [svc]
                break
            found.append(svc)
        if not found:
            raise FingerprintUnavailable(
                f"No RD service found on {self.host} ports {self.ports[0]}..{self.ports[-1]} "
                "(http or https). "
                "Install/start the fingerprint device's RD service, then retry."
            )
        self._service = found[0]
        log.info("RD service on port %d (%s) status %s", found[0].port, found[0].scheme, found[0].status)
        return found[0]

    def _ready_service(self) -> RDServiceInfo:
        """A READY service, rediscovering once (the device may have been plugged in or freed since)."""
        svc = self.discover()
        if not svc.ready:
            svc = self.discover(refresh=True)
        if svc.status == "USED":
            raise error_for(ERR_BUSY, "RD service status USED")
        if not svc.ready:
            raise error_for(ERR_NOT_READY, f"RD service status {svc.status}")
        return svc

    # --- operations ------------------------------------------------------------------------------

    def device_info(self) -> DeviceInfo:
        svc = self.discover()
        raw = self._request(
            "DEVICEINFO", svc.url_for("DEVICEINFO", "/rd/info"), body=None, timeout=self.timeout
        )
        root = self._parse(raw, "DEVICEINFO")
        node = root if root.tag == "DeviceInfo" else root.find(".//DeviceInfo")
        if node is None:
            raise FingerprintProtocolError("The DEVICEINFO reply has no <DeviceInfo> element.")
        return _device_info(node)

    def info(self) -> dict[str, Any]:
        """port, scheme, status, info, dpId, rdsId, rdsVer, mi, dc (``fingerprint info --json``)."""
        svc = self.discover(refresh=True)
        out: dict[str, Any] = {"port": svc.port, "scheme": svc.scheme, "status": svc.status, "info": svc.info}
        dev = self.device_info()
        out.update(dpId=dev.dp_id, rdsId=dev.rds_id, rdsVer=dev.rds_ver, mi=dev.mi, dc=dev.dc)
        return out

    def capture(self, options: PidOptions | None = None) -> CaptureResult:
        """Capture a finger.  Device errors (busy, not ready, timeout, failed, refused) raise our errors."""
        opts = options or self.options
        svc = self._ready_service()
        # the device waits up to opts.timeout_ms for a finger; allow the HTTP call that long plus slack
        timeout = self.timeout + opts.timeout_ms / 1000.0
        url = svc.url_for("CAPTURE", "/rd/capture")
        raw = self._request("CAPTURE", url, body=opts.to_xml(), timeout=timeout)
        return self._capture_result(raw)

    def _capture_result(self, raw: bytes) -> CaptureResult:
        root = self._parse(raw, "CAPTURE")
        resp = root.find("Resp") if root.tag == "PidData" else None
        if resp is None:
            raise FingerprintProtocolError("The CAPTURE reply has no <PidData><Resp>.")
        raw_code = (resp.get("errCode") or "").strip()
        try:
            err_code = int(raw_code)
        except ValueError:
            raise FingerprintProtocolError("The CAPTURE reply has no numeric errCode.") from None
        err_info = resp.get("errInfo", "")
        if err_code != 0:
            log.info("RD capture failed with errCode %d", err_code)
            raise error_for(err_code, err_info)
        if root.find("Data") is None:
            raise FingerprintProtocolError("The CAPTURE reply says success but carries no <Data>.")
        device = root.find("DeviceInfo")
        return CaptureResult(
            err_code=err_code,
            err_info=err_info,
            f_count=resp.get("fCount", ""),
            f_type=resp.get("fType", ""),
            nm_points=resp.get("nmPoints", ""),
            q_score=resp.get("qScore", ""),
            pid_xml=raw.decode("utf-8", errors="replace"),
            device=None if device is None else _device_info(device),
        )
