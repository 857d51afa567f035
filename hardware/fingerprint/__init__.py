"""Fingerprint devices: the UIDAI RD service (Aadhaar capture) and the R30x sensor (operator login)."""

from __future__ import annotations

from collections.abc import Iterable

import requests

from hardware.fingerprint.base import CaptureDevice, FingerprintSensor
from hardware.fingerprint.r30x import R30xSensor
from hardware.fingerprint.rdservice import CaptureResult, PidOptions, RDServiceClient


def open_fingerprint(
    kind: str,
    *,
    url: str | None = None,
    rdservice_ports: str | Iterable[int] | None = None,
    session: requests.Session | None = None,
) -> CaptureDevice | FingerprintSensor | None:
    """The device for ``[fingerprint] kind``: "rdservice", "r30x" (needs ``url``) or "none" (None).

    Nothing is opened yet: the RD service is discovered on first use, the R30x
    port is opened by ``open()`` / ``with``.
    """
    kind = kind.strip().lower()
    if kind == "none":
        return None
    if kind == "rdservice":
        return RDServiceClient(session=session, ports=rdservice_ports)
    if kind == "r30x":
        if not url:
            raise ValueError('[fingerprint] kind = "r30x" needs [fingerprint] url (e.g. /dev/ttyUSB1)')
        return R30xSensor(url)
    raise ValueError(f'[fingerprint] kind must be "rdservice", "r30x" or "none", not {kind!r}')


__all__ = [
    "CaptureDevice",
    "CaptureResult",
    "FingerprintSensor",
    "PidOptions",
    "R30xSensor",
    "RDServiceClient",
    "open_fingerprint",
]
