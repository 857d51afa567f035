"""Shared fixtures: a kiosk data dir with its config, the CLI (in this process through click's
CliRunner, or as a real process when a test needs one), and an open ledger for in-process tests."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from agent import cli as agent_cli
from agent import config as config_mod
from agent.harness import PORTS_ENV
from agent.ledger import Ledger, init_ledger, open_ledger

# Test workers side by side (pytest-xdist, `-n auto` in pyproject.toml) each pick servers' ports
# from their own range, below the OS's ephemeral ports (32768 up, where clients' connections
# take theirs): two workers never pick the same port before either binds it.
PORTS_LOW, PORTS_HIGH = 20000, 32000


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...
    if worker:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        size = (PORTS_HIGH - PORTS_LOW) // max(count, 1)
        low = PORTS_LOW + int(worker.removeprefix("gw")) * size
        os.environ[PORTS_ENV] = f"{low}-{low + size - 1}"


@dataclass
class Kiosk:
    """A kiosk's config file and data dir in a temp folder."""

    root: Path
    config_path: Path
    env: dict[str, str]

    @property
    def cfg(self) -> config_mod.Config:
        return config_mod.load(str(self.config_path), env={})

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "agent", "--config", str(self.config_path), *args]

    def run(
        self, *args: str, check: bool = False, timeout: float = 60, process: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """`kiosk-agent --config <this kiosk> args...`. In this process by default (the console
        script's own ``main``, so the exit codes and error lines are the real ones); a real process
        with ``process=True``, for a test that needs one (signals, `run`, a lock held by this process)."""
        if process:
            proc = subprocess.run(
                self.argv(*args), capture_output=True, text=True, env=self.env, timeout=timeout
            )
        else:
            proc = invoke_cli(self.argv(*args)[3:], self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json", check=True).stdout)


class _ConsoleScript(click.Command):
    """`kiosk-agent` as its console script runs it (``agent.cli.main`` reads ``sys.argv`` and maps
    errors to exit codes), in a shape CliRunner can invoke."""

    def __init__(self) -> None:
        super().__init__("kiosk-agent")

    def main(self, args: Any = None, prog_name: str | None = None, **_: Any) -> None:  # type: ignore[override]
        saved = sys.argv
        sys.argv = [prog_name or "kiosk-agent", *(args or [])]
        try:
            agent_cli.main()
        finally:
            sys.argv = saved


def invoke_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in this process with exactly ``env`` as its environment. What a process would
    leave behind is undone: the log handler the command installs on the root logger (it names
    this kiosk's data dir) and the root level."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update({k: v for k, v in env.items() if os.environ.get(k) != v})
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = CliRunner().invoke(_ConsoleScript(), args, env=overrides)
    finally:
        for h in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(h)
            h.close()
        root.setLevel(level)
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # as the interpreter would
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, stderr)


def write_config(root: Path, extra: str = "") -> Path:
    """A kiosk's config; its disk reserve is off (hundreds of test kiosks would hold 16 MB each)
    unless ``extra`` sets it: tests of the reserve use :func:`kiosk_on`."""
    if "reserve_mb" not in extra:
        extra = extra.replace("[ledger]\n", "[ledger]\nreserve_mb = 0\n", 1)
        if "[ledger]" not in extra:
            extra += "\n[ledger]\nreserve_mb = 0\n"
    path = root / "agent.toml"
    path.write_text(f'[agent]\ndata_dir = "data"\n{extra}', encoding="utf-8")
    return path


@pytest.fixture
def kiosk(tmp_path: Path) -> Kiosk:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_AGENT_")}
    return Kiosk(tmp_path, write_config(tmp_path), env)


@pytest.fixture
def ledger(kiosk: Kiosk) -> Iterator[Ledger]:
    init_ledger(kiosk.cfg, dev_leases=True)
    with open_ledger(kiosk.cfg) as led:
        yield led


ELEC = {
    "service": "ELEC_BILL",
    "amount": "1250.50",
    "fields": {"discom": "JVVNL", "k_number": "210412345678"},
}


@dataclass
class SmallDisk:
    """A size-limited tmpfs mounted for one test (a real filesystem that fills up)."""

    mount: Path

    def fill(self, leave: int = 0) -> Path:
        """Write a filler file until fewer than ``leave`` bytes are free (0: ENOSPC)."""
        filler = self.mount / f"filler-{len(list(self.mount.glob('filler-*')))}"
        with open(filler, "wb") as fh:
            chunk = b"\xa5" * 65536
            while True:
                room = self.free() - leave
                if room <= 0:
                    break
                try:
                    fh.write(chunk[: min(len(chunk), max(room, 1))])
                    fh.flush()
                except OSError:
                    break
        return filler

    def free(self) -> int:
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize

    def release(self) -> None:
        for filler in self.mount.glob("filler-*"):
            filler.unlink()


def _mount(argv: list[str]) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot make a small filesystem here ({argv[0]}: {exc.__class__.__name__})")
    if proc.returncode != 0:
        pytest.skip(
            f"cannot make a small filesystem here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}"
        )


@pytest.fixture
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDisk]:
    """An 8 MB tmpfs, created and removed by the test; skipped where this machine can't mount."""
    mount = tmp_path_factory.mktemp("smalldisk")
    _mount(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)])
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.fixture
def small_ext4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDisk]:
    """An 8 MB loop-mounted ext4 image with 1 KB blocks and no root reserve (the shape in which a
    sparse, mmap'd -shm raised SIGBUS on a full disk); removed by the test."""
    where = tmp_path_factory.mktemp("smallext4")
    image, mount = where / "disk.img", where / "mnt"
    mount.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(8 * 1024 * 1024)
    _mount(["mkfs.ext4", "-q", "-F", "-b", "1024", "-m", "0", str(image)])
    _mount(["mount", "-o", "loop", str(image), str(mount)])
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)
        image.unlink(missing_ok=True)


@dataclass
class FailingDisk(SmallDisk):
    """A loop-mounted ext4 image whose backing file can be cut short: reads past the cut are real
    I/O errors (EIO from the block layer), as from a dying disk or a pulled USB drive."""

    image: Path = Path()

    def fail(self, *files: Path) -> None:
        os.sync()
        with open(self.image, "r+b") as fh:
            fh.truncate(1024 * 1024)
        for path in files:  # their cached pages go, so the next read reaches the "disk"
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


@pytest.fixture
def failing_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailingDisk]:
    where = tmp_path_factory.mktemp("failingdisk")
    image, mount = where / "disk.img", where / "mnt"
    mount.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    _mount(["mkfs.ext4", "-q", "-F", str(image)])
    _mount(["mount", "-o", "loop", str(image), str(mount)])
    try:
        yield FailingDisk(mount, image)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)
        image.unlink(missing_ok=True)


def kiosk_on(disk: SmallDisk, kiosk: Kiosk, extra: str = "", reserve_mb: int = 1) -> Kiosk:
    """``kiosk``'s data dir moved onto ``disk`` (its config and logs of processes stay where they are)."""
    (disk.mount / "data").mkdir(mode=0o700)
    kiosk.data_dir.symlink_to(disk.mount / "data")
    kiosk.config_path.write_text(
        f'[agent]\ndata_dir = "data"\n[ledger]\nmin_free_mb = 2\nwarn_free_mb = 4\n'
        f"reserve_mb = {reserve_mb}\n{extra}",
        encoding="utf-8",
    )
    return kiosk
