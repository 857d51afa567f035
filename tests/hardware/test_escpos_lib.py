"""python-escpos's printer database is parsed once per user, not once per process, and written so
that processes starting together never load a half-written file (hardware/escpos_lib.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = (
    "import json, os, sys, hardware.receipt\n"
    "from escpos import capabilities as c\n"
    "print(json.dumps({'full_load': c.full_load, 'dir': c.pickle_dir,"
    " 'profiles': len(c.CAPABILITIES['profiles'])}))\n"
)


def _probe(cache: Path, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCPOS_")}
    env.update(XDG_CACHE_HOME=str(cache), **extra)
    return subprocess.Popen(
        [sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _answer(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    answer: dict[str, object] = json.loads(out)
    return answer


def test_the_database_is_pickled_once_into_a_private_folder(tmp_path: Path) -> None:
    first = _answer(_probe(tmp_path))
    folder = tmp_path / "kiosk-agent" / "escpos"
    assert first["dir"] == str(folder)
    assert first["full_load"] is False  # python-escpos found our pickle: it never ran its YAML parse
    assert int(str(first["profiles"])) > 10
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (pickled,) = folder.glob("*.capabilities.pickle")
    assert stat.S_IMODE(pickled.stat().st_mode) == 0o600
    written = pickled.stat().st_mtime_ns
    again = _answer(_probe(tmp_path))
    assert again == first and pickled.stat().st_mtime_ns == written  # loaded, not written again


def test_processes_starting_together_all_load_it(tmp_path: Path) -> None:
    procs = [_probe(tmp_path) for _ in range(6)]
    answers = [_answer(p) for p in procs]  # all started before any is read
    assert all(a["full_load"] is False for a in answers)
    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1
    assert list((tmp_path / "kiosk-agent" / "escpos").glob(".capabilities-*")) == []  # no temp left


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_a_folder_others_can_write_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "kiosk-agent" / "escpos"
    folder.mkdir(parents=True)
    folder.chmod(0o777)  # anyone could plant a pickle here: loading it would run their code
    answer = _answer(_probe(tmp_path))
    assert answer["dir"] != str(folder) and answer["full_load"] is True  # python-escpos' own way
    assert list(folder.iterdir()) == []


def test_the_operator_page_does_not_load_the_receipt_stack() -> None:
    """`run` serves the page from the first second: it formats fees without python-escpos and
    Pillow (they load when the first receipt prints)."""
    code = "import sys, agent.runner, agent.api.app\nprint(sorted({'escpos', 'PIL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
