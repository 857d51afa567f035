"""Client for a UIDAI Registered Device (RD) service on 127.0.0.1.

The RD service listens on one of the ports 11100-11120 and speaks HTTP with
custom methods: ``RDSERVICE`` (discovery), ``DEVICEINFO`` and ``CAPTURE``.  It
reports device errors inside HTTP 200 replies (``<Resp errCode="720" .../>``);
we turn them into our transient/permanent errors.

Replies are untrusted: they are read with a size cap and an overall deadline,
and parsed with defusedxml with DTDs forbidden (no entity expansion, no
external entities).  The PID block returned by CAPTURE is handed back to the
caller inside :class:`CaptureResult`, whose repr never shows it, and which
refuses to be pickled; it is never logged or stored here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
import requests

from hardware.errors import (
    FingerprintProtocolError,
    FingerprintUnavailable,
    RDServiceBusy,
    RDServiceCaptureFailed,
    RDServiceCaptureTimeout,
    RDServiceError,
    RDServiceNotReady,
    RDServiceRejected,
    ResponseTooLarge,
    UnsafeXML,
)
from hardware.fingerprint.base import CaptureDevice

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS = range(11100, 11121)
MAX_RESPONSE_BYTES = 256 * 1024

# errCode values from the RD service specification (v2.0)
ERR_CAPTURE_TIMEOUT = 700
ERR_BUSY = 710
ERR_NOT_READY = 720
ERR_CAPTURE_FAILED = 730
ERR_NEEDS_REINIT = 740


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

    @property
    def ready(self) -> bool:
        return self.status.upper() == "READY"


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

    __slots__ = ("err_code", "err_info", "f_count", "f_type", "nm_points", "q_score", "_pid_xml")

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
    ) -> None:
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
        return {
            "errCode": self.err_code,
            "errInfo": self.err_info,
            "fCount": self.f_count,
            "fType": self.f_type,
            "nmPoints": self.nm_points,
            "qScore": self.q_score,
        }

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


def _error_for(err_code: int, err_info: str) -> RDServiceError:
    shown = err_info[:200]
    if err_code == ERR_BUSY:
        return RDServiceBusy(
            f"The fingerprint device is being used by another application (RD {err_code}: {shown}). "
            "Close the other application and retry.",
            err_code=err_code,
            err_info=err_info,
        )
    if err_code in (ERR_NOT_READY, ERR_NEEDS_REINIT):
        return RDServiceNotReady(
            f"The fingerprint device is not ready (RD {err_code}: {shown}). "
            "Re-plug the device or restart its RD service, then retry.",
            err_code=err_code,
            err_info=err_info,
        )
    if err_code == ERR_CAPTURE_TIMEOUT:
        return RDServiceCaptureTimeout(
            f"No finger was placed in time (RD {err_code}). Ask the citizen to place a finger and retry.",
            err_code=err_code,
            err_info=err_info,
        )
    if err_code == ERR_CAPTURE_FAILED:
        return RDServiceCaptureFailed(
            f"The capture failed (RD {err_code}: {shown}). Clean the sensor and retry.",
            err_code=err_code,
            err_info=err_info,
        )
    return RDServiceRejected(
        f"The RD service refused the request (RD {err_code}: {shown}).", err_code=err_code, err_info=err_info
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

    def _request(self, method: str, port: int, path: str, *, body: str | None, timeout: float) -> bytes:
        url = f"http://{self.host}:{port}{path if path.startswith('/') else '/' + path}"
        deadline = self._clock() + timeout
        headers = {"Accept": "text/xml"}
        if body is not None:
            headers["Content-Type"] = "text/xml; charset=utf-8"
        try:
            resp = self.session.request(
                method,
                url,
                data=body.encode() if body else None,
                headers=headers,
                timeout=timeout,
                stream=True,
            )
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
                    f"The RD service's reply to {method} was cut off or too slow "
                    f"({type(exc).__name__}); retry."
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

    # --- operations ------------------------------------------------------------------------------

    def probe(self, port: int) -> RDServiceInfo | None:
        """Ask one port for RDSERVICE; None if nothing usable answers there."""
        try:
            raw = self._request("RDSERVICE", port, "/", body=None, timeout=self.probe_timeout)
        except FingerprintUnavailable:
            return None
        except FingerprintProtocolError as exc:
            if isinstance(exc, UnsafeXML | ResponseTooLarge):
                raise
            return None
        try:
            root = self._parse(raw, "RDSERVICE")
        except UnsafeXML:
            raise
        except FingerprintProtocolError:
            return None  # some other service on this port
        if root.tag != "RDService":
            return None
        paths = {
            (iface.get("id") or "").upper(): iface.get("path") or ""
            for iface in root.iter("Interface")
            if iface.get("id")
        }
        return RDServiceInfo(
            port=port, status=root.get("status", "UNKNOWN"), info=root.get("info", ""), paths=paths
        )

    def discover(self, *, refresh: bool = False) -> RDServiceInfo:
        """The first READY RD service on our ports (else the first one found)."""
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
                f"No RD service found on {self.host} ports {self.ports[0]}..{self.ports[-1]}. "
                "Install/start the fingerprint device's RD service, then retry."
            )
        self._service = found[0]
        log.info("RD service on port %d status %s", found[0].port, found[0].status)
        return found[0]

    def device_info(self) -> DeviceInfo:
        svc = self.discover()
        raw = self._request(
            "DEVICEINFO", svc.port, svc.paths.get("DEVICEINFO", "/rd/info"), body=None, timeout=self.timeout
        )
        root = self._parse(raw, "DEVICEINFO")
        node = root if root.tag == "DeviceInfo" else root.find(".//DeviceInfo")
        if node is None:
            raise FingerprintProtocolError("The DEVICEINFO reply has no <DeviceInfo> element.")
        return DeviceInfo(
            dp_id=node.get("dpId", ""),
            rds_id=node.get("rdsId", ""),
            rds_ver=node.get("rdsVer", ""),
            mi=node.get("mi", ""),
            mc=node.get("mc", ""),
            dc=node.get("dc", ""),
        )

    def info(self) -> dict[str, Any]:
        """port, status, info, dpId, rdsId, rdsVer, mi, dc (what ``fingerprint info --json`` prints)."""
        svc = self.discover(refresh=True)
        out: dict[str, Any] = {"port": svc.port, "status": svc.status, "info": svc.info}
        dev = self.device_info()
        out.update(dpId=dev.dp_id, rdsId=dev.rds_id, rdsVer=dev.rds_ver, mi=dev.mi, dc=dev.dc)
        return out

    def capture(self, options: PidOptions | None = None) -> CaptureResult:
        """Capture a finger.  Device errors (busy, not ready, timeout, failed) raise our errors."""
        opts = options or self.options
        svc = self.discover()
        if svc.status.upper() == "NOTREADY":
            # rediscover once: the device may have been plugged in since
            svc = self.discover(refresh=True)
            if svc.status.upper() == "NOTREADY":
                raise _error_for(ERR_NOT_READY, f"RD service status {svc.status}")
        # the device waits up to opts.timeout_ms for a finger; allow the HTTP call that long plus slack
        timeout = self.timeout + opts.timeout_ms / 1000.0
        raw = self._request(
            "CAPTURE", svc.port, svc.paths.get("CAPTURE", "/rd/capture"), body=opts.to_xml(), timeout=timeout
        )
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
            raise _error_for(err_code, err_info)
        if root.find("Data") is None:
            raise FingerprintProtocolError("The CAPTURE reply says success but carries no <Data>.")
        return CaptureResult(
            err_code=err_code,
            err_info=err_info,
            f_count=resp.get("fCount", ""),
            f_type=resp.get("fType", ""),
            nm_points=resp.get("nmPoints", ""),
            q_score=resp.get("qScore", ""),
            pid_xml=raw.decode("utf-8", errors="replace"),
        )
