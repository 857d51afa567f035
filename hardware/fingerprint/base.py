"""Interfaces for fingerprint devices.

Two very different kinds of device live under this package:

* :class:`FingerprintSensor` -- a sensor that stores templates and matches on the
  device itself (the R30x/ZhianTec family), used for offline operator login.
  No template or image ever leaves the sensor.
* :class:`CaptureDevice` -- a UIDAI RD service that captures a finger and returns
  an encrypted PID block for Aadhaar authentication; the block is forwarded and
  never stored or logged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from hardware._lifecycle import OpenClose


class FingerprintSensor(OpenClose, ABC):
    """A sensor with an on-device template library (slots ``0 .. capacity-1``)."""

    kind: str = "abstract"
    capacity: int = 0

    @abstractmethod
    def open(self) -> None:
        """Connect (and authenticate) to the sensor."""

    @abstractmethod
    def close(self) -> None:
        """Release the port; safe to call twice."""

    @abstractmethod
    def enroll(self, slot: int) -> None:
        """Capture the same finger twice and store the merged template in ``slot``."""

    @abstractmethod
    def identify(self) -> int | None:
        """Capture a finger and return the slot it matches, or ``None`` for no match."""

    @abstractmethod
    def template_count(self) -> int:
        """How many templates are stored on the sensor."""

    @abstractmethod
    def clear(self) -> None:
        """Delete every stored template."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Describe the sensor (kind, port, number of templates)."""


class CaptureDevice(ABC):
    """A device that captures a finger for Aadhaar authentication (RD service)."""

    kind: str = "abstract"

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Describe the device (no PII): port, status, dpId, rdsId, mi..."""

    @abstractmethod
    def capture(self) -> Any:
        """Capture a finger; the result holds the PID block, which must never be logged or stored."""
