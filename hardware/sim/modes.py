"""The ``--fail`` modes of each simulator, in one place: the simulators, ``--help`` and the
README's command table all show these (tests/hardware/test_cli.py checks they agree).

Plain data, so the CLI can offer the choices without importing Pillow.
"""

from __future__ import annotations

#: ``--fail`` modes of ``kiosk-agent sim printer`` (the README lists the same)
PRINTER_FAIL_MODES: dict[str, str] = {
    "paper_out": "status says paper end (offline), printing is discarded",
    "paper_low": "status says paper near end, printing works",
    "offline": "status says offline (cover open), printing is discarded",
    "busy": "the printer stops reading (receive buffer full): no status, writes back up",
    "no_status": "never answers DLE EOT",
    "garbage": "answers DLE EOT with bytes that are not status bytes",
    "slow": "answers DLE EOT after --delay seconds",
    "unplug": "the line drops after --unplug-after N more bytes, back after --replug-after S",
}

#: ``--fail`` modes of ``kiosk-agent sim fingerprint`` (the README lists the same)
R30X_FAIL_MODES: dict[str, str] = {
    "busy": "every command answers 0x01 (packet error), as a sensor that cannot take commands",
    "image_fail": "GenImg answers 0x03 (the finger image could not be collected)",
    "poor_image": "Img2Tz answers 0x07 (too few feature points)",
    "bad_checksum": "replies carry a wrong checksum",
    "garbage": "replies are noise, not frames",
    "silent": "never replies",
    "unplug": "the line drops after --unplug-after N more bytes",
}

#: ``--fail`` modes of ``kiosk-agent sim rdservice`` (the README lists the same)
RDSERVICE_FAIL_MODES: dict[str, str] = {
    "used": "RDSERVICE says USED, CAPTURE answers errCode 710 (another application)",
    "busy": "RDSERVICE says READY, CAPTURE answers errCode 710",
    "reinit": "CAPTURE answers errCode 740 (device needs to be re-initialised)",
    "not_ready": "RDSERVICE says NOTREADY, CAPTURE answers errCode 720",
    "timeout": "CAPTURE answers errCode 700 (no finger in time)",
    "capture_failed": "CAPTURE answers errCode 730",
    "internal": "CAPTURE answers errCode 999",
    "slow": "every reply waits --delay seconds",
    "oversized": "CAPTURE streams 1 MiB of XML",
    "entity": "replies carry a billion-laughs DTD",
    "garbage": "replies are not XML",
}
