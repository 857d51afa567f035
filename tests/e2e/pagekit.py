"""Helpers for the operator-page tests in Debian's Chromium (playwright by executable_path: it
never downloads a browser): launch, screenshots as artifacts, axe-core from the npm registry
(installed once into a cache folder), and a scan of the rendered text for codes and state words."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent import catalog, i18n
from tests.browser import ARTIFACTS, launch, needs_chromium

__all__ = ["ARTIFACTS", "launch", "needs_chromium"]

AXE_VERSION = "4.10.2"
AXE_DIR = Path(os.environ.get("KIOSK_TEST_AXE_DIR", Path.home() / ".cache" / "kiosk-agent-tests" / "axe"))
VIEWPORTS = {"1366x768": {"width": 1366, "height": 768}, "1024x600": {"width": 1024, "height": 600}}


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def axe_script() -> Path:
    """axe-core's axe.min.js, installed from the npm registry into a cache folder the first time
    (under a file lock: test processes running side by side install it once, not into each other)."""
    path = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if path.exists():
        return path
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("needs npm to fetch axe-core (.ci/run installs it)")
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    with open(AXE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not path.exists():
            argv = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR)]
            subprocess.run([*argv, f"axe-core@{AXE_VERSION}"], check=True, capture_output=True, timeout=300)
    return path


def axe_serious(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (the context must
    bypass the page's CSP for the injected script)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script()))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core"
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def forbidden_words() -> set[str]:
    """Every code and state word the API can send: none may show on the Hindi page."""
    words = set(i18n.ERRORS["en"]) | set(i18n.REASONS["en"]) | set(i18n.ALERTS["en"])
    words |= {key.split(".", 1)[1] for key in i18n.STATES["en"]} - {"none"}
    words |= {s.code for s in catalog.bundled().services}
    words |= {"Rs", "online", "offline", "Online", "Offline", "DUPLICATE", "sale", "void"}
    return words


def english_left(text: str) -> list[str]:
    """Codes or state words found in the rendered text (word by word)."""
    found = set(re.findall(r"[A-Za-z_]+", text))
    return sorted(found & forbidden_words())
