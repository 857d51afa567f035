"""`kiosk-agent demo`: one command, no config, exit 0, everything cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests


def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--json", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["report"]["accepted"] == 50 and doc["report"]["pending"] == 0 and doc["verified"] is True
    totals = doc["reconciliation"]
    assert totals["count"] == 50 and totals["gross_paise"] > 0 and totals["commission_paise"] > 0
    assert Path(doc["receipt_png"]).stat().st_size > 1000
    assert "link down" in proc.stderr and "refused offline" in proc.stderr
    assert took < 60
    # the server it started is gone
    log = (tmp_path / "demo" / "server.log").read_text()
    assert "Traceback" not in log
    url = proc.stderr.split("central server up on ", 1)[1].split(";", 1)[0].strip()
    try:
        requests.get(url + "/healthz", timeout=1)
        raise AssertionError("demo server still answering")
    except requests.ConnectionError:
        pass
