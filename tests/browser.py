"""Debian's Chromium for the page tests (the operator page and the console): playwright by
executable_path, so it never downloads a browser; screenshots kept as test artifacts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("KIOSK_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--no-first-run",
    "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM} (.ci/run installs it)"
)


def launch(pw: Any) -> Any:
    """A headless Chromium from ``sync_playwright()``'s ``pw``."""
    ARTIFACTS.mkdir(exist_ok=True)
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
