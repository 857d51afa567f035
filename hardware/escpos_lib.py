"""python-escpos, imported with its printer database cached where it survives the process.

On import python-escpos reads its ``capabilities.json`` with PyYAML's pure-Python loader (0.3-0.6 s
of CPU here) and pickles the result into ``ESCPOS_CAPABILITIES_PICKLE_DIR``, or, when that is not
set, into a fresh ``mkdtemp()`` folder no later process looks in. So every process that printed a
receipt paid the parse again, and two processes starting at once could race: the pickle is
written in place, and one could load the other's half-written file.

Before importing it, this module points that variable at a folder of this user's cache (0700,
made here; not used when it cannot be made or is not the user's own: loading a pickle runs code)
and, when the pickle there is missing or older than the JSON, writes it itself: read with
:mod:`json` (the file is JSON; ~10 ms), written to a temporary file and renamed into place, so a
reader sees the old file or the whole new one. python-escpos then finds a current pickle and only
loads it. If python-escpos ever names its pickle differently it parses and writes as before:
slower, never wrong. A variable already set by the operator wins.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import platform
import stat
import sys
import tempfile
from pathlib import Path

ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def cache_dir(env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """This user's cache folder for python-escpos (``%LOCALAPPDATA%`` on Windows, else
    ``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        base = Path(env["LOCALAPPDATA"])
    else:
        base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kiosk-agent" / "escpos"


def private_dir(path: Path) -> bool:
    """Make ``path`` (0700) if missing; True when it is a folder only this user can write."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    if sys.platform == "win32":  # no POSIX owner or modes: the profile folder is the user's own
        return True
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def capabilities_file() -> Path | None:
    """The JSON python-escpos loads (its own, or ``ESCPOS_CAPABILITIES_FILE``), found without
    importing it."""
    if os.environ.get("ESCPOS_CAPABILITIES_FILE"):
        return Path(os.environ["ESCPOS_CAPABILITIES_FILE"])
    spec = importlib.util.find_spec("escpos")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "capabilities.json"


def pickle_path(folder: Path) -> Path:
    """Where python-escpos looks for its pickle in ``folder``."""
    return folder / f"{platform.python_version()}.capabilities.pickle"


def write_pickle(folder: Path, source: Path) -> None:
    """python-escpos's pickle of ``source`` in ``folder``, unless a current one is there."""
    target = pickle_path(folder)
    try:
        if target.stat().st_mtime >= source.stat().st_mtime:
            return
    except FileNotFoundError:
        pass
    data = json.loads(source.read_text(encoding="utf-8"))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".capabilities-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(data, fh, protocol=2)  # the protocol python-escpos writes
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prepare() -> None:
    if os.environ.get(ENV):
        return
    folder, source = cache_dir(), capabilities_file()
    if source is None or not private_dir(folder):
        return
    try:
        write_pickle(folder, source)
    except (OSError, ValueError):  # a full disk, a broken file: python-escpos does its own load
        return
    os.environ[ENV] = str(folder)


_prepare()

from escpos.printer import Dummy  # noqa: E402 - after the cache is ready

__all__ = ["Dummy", "cache_dir", "capabilities_file", "pickle_path", "private_dir", "write_pickle"]
