"""The RD service's errCode values (UIDAI RD Service specification 2.0) and what each means for
the operator.

Families, and whether retrying can help:

* 100-210 -- the service refused our PidOptions (``fType``, ``fCount``, ``pidVer``,
  ``timeout``, ``posh``, ``format``...): a configuration problem, permanent;
* 700 capture timed out, 710 used by another application, 720 device not ready,
  730 capture failed, 740 device needs re-initialising: transient;
* 750 / 760 the service does not do fingerprints / iris: permanent (wrong RD service);
* 770 invalid URL: permanent;
* 999 internal error: transient (restart the service).

Any other code is a permanent refusal that names the code.
"""

from __future__ import annotations

from hardware.errors import (
    RDServiceBusy,
    RDServiceCaptureFailed,
    RDServiceCaptureTimeout,
    RDServiceError,
    RDServiceInternalError,
    RDServiceNotReady,
    RDServiceOptionsRejected,
    RDServiceRejected,
    RDServiceUnsupported,
)

ERR_INVALID_OPTIONS = 100
ERR_FTYPE = 110
ERR_FCOUNT = 120
ERR_ITYPE = 130
ERR_ICOUNT = 140
ERR_PIDVER = 150
ERR_TIMEOUT_VALUE = 160
ERR_POSH = 170
ERR_FACE = 180
ERR_FORMAT = 190
ERR_DEMO = 200
ERR_PROTOBUF = 210
ERR_CAPTURE_TIMEOUT = 700
ERR_BUSY = 710
ERR_NOT_READY = 720
ERR_CAPTURE_FAILED = 730
ERR_NEEDS_REINIT = 740
ERR_NO_FINGERPRINT = 750
ERR_NO_IRIS = 760
ERR_INVALID_URL = 770
ERR_INTERNAL = 999

#: the specification's own wording, used when a service sends an empty errInfo
SPEC_TEXT: dict[int, str] = {
    ERR_INVALID_OPTIONS: "Invalid PidOptions input",
    ERR_FTYPE: "Invalid value for fType",
    ERR_FCOUNT: "Invalid value for fCount",
    ERR_ITYPE: "Invalid value for iType",
    ERR_ICOUNT: "Invalid value for iCount",
    ERR_PIDVER: "Invalid value for pidVer",
    ERR_TIMEOUT_VALUE: "Invalid value for timeout",
    ERR_POSH: "Invalid value for posh",
    ERR_FACE: "Face matching is not supported",
    ERR_FORMAT: "Invalid value for format",
    ERR_DEMO: "Invalid Demo structure",
    ERR_PROTOBUF: "Protobuf format not supported",
    ERR_CAPTURE_TIMEOUT: "Capture timed out",
    ERR_BUSY: "Being used by another application",
    ERR_NOT_READY: "Device not ready",
    ERR_CAPTURE_FAILED: "Capture Failed",
    ERR_NEEDS_REINIT: "Device needs to be re-initialized",
    ERR_NO_FINGERPRINT: "RD Service does not support fingerprints",
    ERR_NO_IRIS: "RD Service does not support Iris",
    ERR_INVALID_URL: "Invalid URL",
    ERR_INTERNAL: "Internal error",
}

_ADVICE: dict[int, tuple[type[RDServiceError], str]] = {
    ERR_CAPTURE_TIMEOUT: (
        RDServiceCaptureTimeout,
        "No finger was placed in time. Ask the citizen to place a finger and retry.",
    ),
    ERR_BUSY: (
        RDServiceBusy,
        "The fingerprint device is being used by another application. Close it and retry.",
    ),
    ERR_NOT_READY: (
        RDServiceNotReady,
        "The fingerprint device is not ready: check its USB cable, wait for its light, then retry.",
    ),
    ERR_CAPTURE_FAILED: (
        RDServiceCaptureFailed,
        "The capture failed. Clean the sensor, ask the citizen to press the finger flat, and retry.",
    ),
    ERR_NEEDS_REINIT: (
        RDServiceNotReady,
        "The fingerprint device needs re-initialising: unplug it and plug it back in "
        "(or restart its RD service), then retry.",
    ),
    ERR_NO_FINGERPRINT: (
        RDServiceUnsupported,
        "This RD service does not capture fingerprints (it may be for iris or face). "
        "Install the fingerprint device's RD service.",
    ),
    ERR_NO_IRIS: (
        RDServiceUnsupported,
        "This RD service does not capture iris; ask for fingerprints instead.",
    ),
    ERR_INVALID_URL: (
        RDServiceRejected,
        "The RD service refused the address it was called on; restart the RD service, and if it "
        "persists report it with the service's name and version.",
    ),
    ERR_INTERNAL: (
        RDServiceInternalError,
        "The RD service failed inside; restart the RD service, then retry.",
    ),
}


def _clean(err_info: str) -> str:
    shown = "".join(ch if ch.isprintable() else " " for ch in err_info).strip()
    return shown[:160]


def error_for(err_code: int, err_info: str) -> RDServiceError:
    """Our error for a non-zero errCode: the right transient/permanent class and an operator message."""
    said = _clean(err_info) or SPEC_TEXT.get(err_code, "no description")
    where = f"(RD {err_code}: {said})"
    if ERR_INVALID_OPTIONS <= err_code <= ERR_PROTOBUF:
        return RDServiceOptionsRejected(
            f"The RD service refused the kiosk's capture settings {where}. This is a configuration "
            "problem, not the citizen's: check the [fingerprint] settings, or report it.",
            err_code=err_code,
            err_info=err_info,
        )
    known = _ADVICE.get(err_code)
    if known is None:
        return RDServiceRejected(
            f"The RD service refused the capture {where}. Check the device's RD service, or report the code.",
            err_code=err_code,
            err_info=err_info,
        )
    cls, advice = known
    return cls(f"{advice} {where}", err_code=err_code, err_info=err_info)


__all__ = ["SPEC_TEXT", "error_for"]
