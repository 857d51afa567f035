"""Errors raised by the hardware layer.

Every error is either :class:`TransientHardwareError` (retry later: the device is
unplugged, busy, timed out, out of paper, the finger was not on the sensor) or
:class:`PermanentHardwareError` (retrying the same call will not help: bad input,
a malformed or hostile reply, a wrong password, a forged receipt QR).  Callers
branch on that split and nothing else.

Messages say what happened and what to do, in words an operator understands,
and never carry PII (no Aadhaar, mobile number, biometric or PID data).
"""

from __future__ import annotations


class HardwareError(Exception):
    """Base class for every error raised by ``hardware``."""

    transient: bool = False


class TransientHardwareError(HardwareError):
    """The operation may succeed if retried later."""

    transient = True


class PermanentHardwareError(HardwareError):
    """Retrying the same operation will not help."""

    transient = False


# --- printer -------------------------------------------------------------------------------------


class PrinterError(HardwareError):
    """Base class for printer errors."""


class PrinterUnavailable(PrinterError, TransientHardwareError):
    """The printer could not be reached or the connection dropped (unplugged, powered off)."""


class PrinterPaperOut(PrinterError, TransientHardwareError):
    """The printer reports that it has no paper."""


class PrinterOffline(PrinterError, TransientHardwareError):
    """The printer reports that it is offline (cover open, feed button held, error state)."""


class PrinterDisabled(PrinterError, PermanentHardwareError):
    """Printing is switched off in the configuration (``[printer] url = "none"``)."""


class ReceiptError(PermanentHardwareError):
    """The receipt data cannot be printed as given (bad field, too long, naive time...)."""


class ReceiptQRInvalid(PermanentHardwareError):
    """A scanned receipt QR is malformed or its signature does not verify."""


# --- fingerprint ---------------------------------------------------------------------------------


class FingerprintError(HardwareError):
    """Base class for fingerprint device errors."""


class FingerprintUnavailable(FingerprintError, TransientHardwareError):
    """No fingerprint device / RD service answered, or the connection dropped."""


class DeviceBusy(FingerprintError, TransientHardwareError):
    """The device is being used by another application."""


class DeviceNotReady(FingerprintError, TransientHardwareError):
    """The device is not ready (not connected to the RD service, needs re-initialising)."""


class CaptureTimeout(FingerprintError, TransientHardwareError):
    """No finger was captured before the timeout."""


class CaptureFailed(FingerprintError, TransientHardwareError):
    """A finger was seen but the capture failed (poor quality); ask the citizen to try again."""


class NoFinger(FingerprintError, TransientHardwareError):
    """No finger on the sensor."""


class EnrollMismatch(FingerprintError, TransientHardwareError):
    """The two enrolment captures did not come from the same finger."""


class FrameError(FingerprintError, TransientHardwareError):
    """A garbled frame came from the sensor (bad header, length, checksum or address)."""


class FingerprintProtocolError(FingerprintError, PermanentHardwareError):
    """The device answered something we cannot or will not parse."""


class ResponseTooLarge(FingerprintProtocolError):
    """The device's reply was larger than we accept."""


class UnsafeXML(FingerprintProtocolError):
    """The reply carried a DTD or entity declarations, which we refuse to parse."""


class FingerprintRejected(FingerprintError, PermanentHardwareError):
    """The device refused the request (bad options, wrong password, slot out of range...)."""


class RDServiceError(FingerprintError):
    """Mixin carrying the RD service's own error code and message.

    Raised as one of the classes below, which also derive from a transient or
    permanent class.
    """

    def __init__(self, message: str, *, err_code: int, err_info: str) -> None:
        super().__init__(message)
        self.err_code = err_code
        self.err_info = err_info


class RDServiceBusy(RDServiceError, DeviceBusy):
    """errCode 710, or status USED: another application holds the device."""


class RDServiceNotReady(RDServiceError, DeviceNotReady):
    """errCode 720 / 740, or status NOTREADY: the device is unplugged or needs re-initialising."""


class RDServiceCaptureTimeout(RDServiceError, CaptureTimeout):
    """errCode 700: no finger within the timeout."""


class RDServiceCaptureFailed(RDServiceError, CaptureFailed):
    """errCode 730: a finger was seen but the capture failed."""


class RDServiceRejected(RDServiceError, FingerprintRejected):
    """Any other refusal (an errCode outside the documented families, 770 invalid URL)."""


class RDServiceOptionsRejected(RDServiceError, FingerprintRejected):
    """errCode 100-210: the RD service refused our PidOptions (a configuration problem)."""


class RDServiceUnsupported(RDServiceError, FingerprintRejected):
    """errCode 750/760: this RD service does not capture the modality we asked for."""


class RDServiceInternalError(RDServiceError, TransientHardwareError):
    """errCode 999: the RD service failed inside; restarting it usually helps."""


__all__ = [
    "CaptureFailed",
    "CaptureTimeout",
    "DeviceBusy",
    "DeviceNotReady",
    "EnrollMismatch",
    "FingerprintError",
    "FingerprintProtocolError",
    "FingerprintRejected",
    "FingerprintUnavailable",
    "FrameError",
    "HardwareError",
    "NoFinger",
    "PermanentHardwareError",
    "PrinterDisabled",
    "PrinterError",
    "PrinterOffline",
    "PrinterPaperOut",
    "PrinterUnavailable",
    "RDServiceBusy",
    "RDServiceCaptureFailed",
    "RDServiceCaptureTimeout",
    "RDServiceError",
    "RDServiceInternalError",
    "RDServiceNotReady",
    "RDServiceOptionsRejected",
    "RDServiceRejected",
    "RDServiceUnsupported",
    "ReceiptError",
    "ReceiptQRInvalid",
    "ResponseTooLarge",
    "TransientHardwareError",
    "UnsafeXML",
]
