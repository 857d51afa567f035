"""Durable file writes: temp file in the same folder, fsync, ``os.replace``, fsync the folder.
And private places: the data dir and its logs folder are 0700, the files in them 0600, made so and
tightened when found looser (:func:`private_dir`, :func:`private_file`; POSIX only)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories can't be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """``path`` holds either its old content or all of ``data``, never a part (mode set at creation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _looser(path: Path, allowed: int) -> bool:
    return os.name == "posix" and bool(stat.S_IMODE(path.stat().st_mode) & ~allowed)


def private_dir(folder: Path) -> bool:
    """Make ``folder`` (and its parents) with ``folder`` itself 0700; tighten it if others may read it.
    True when an existing folder was tightened (the caller warns)."""
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700, exist_ok=True)
        if os.name == "posix":
            os.chmod(folder, 0o700)  # mkdir's mode passes through the umask
        return False
    if _looser(folder, 0o700):
        os.chmod(folder, 0o700)
        return True
    return False


def private_file(path: Path) -> bool:
    """Tighten an existing ``path`` to 0600 if looser; True when it was (the caller warns)."""
    try:
        if _looser(path, 0o600):
            os.chmod(path, 0o600)
            return True
    except FileNotFoundError:
        pass
    return False


def create_private(path: Path) -> None:
    """Create an empty ``path`` 0600 (for a file another library then opens and fills)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem (its nearest existing
    folder's). ``shutil.disk_usage`` gives the same, but this is called before every sale."""
    if not hasattr(os, "statvfs"):  # Windows
        import shutil

        while not path.exists() and path != path.parent:
            path = path.parent
        return shutil.disk_usage(path).free
    while True:
        try:
            st = os.statvfs(path)
        except FileNotFoundError:
            if path == path.parent:
                raise
            path = path.parent
            continue
        return st.f_bavail * st.f_frsize


def keep_reserve(path: Path, size: int) -> bool:
    """Make ``path`` a file of ``size`` allocated bytes (blocks on disk, not a sparse hole), unless
    it is already there; True when it had to be made. A full disk leaves no partial reserve."""
    if size <= 0 or (path.exists() and path.stat().st_size >= size):
        return False
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        else:
            chunk = b"\0" * (1 << 20)
            for off in range(0, size, len(chunk)):
                os.write(fd, chunk[: size - off])
        os.fsync(fd)
    except OSError:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    return True


def allocate(path: Path) -> None:
    """Give every byte of ``path`` (up to its size) real blocks: a file with holes that is mmap'd
    (SQLite's -shm on a 1 KB-block filesystem) raises SIGBUS when a hole is touched on a full
    disk; allocated, it can't. OSError (ENOSPC) when the blocks aren't there.

    Only through a descriptor this process already holds on the file (SQLite's own, found in
    ``/proc/self/fd``): opening and closing one of our own would drop every POSIX lock this
    process holds on it (fcntl locks belong to the process and go with *any* close), and SQLite's
    locks on the -shm are what keep another process from truncating it under our mmap (SIGBUS)
    and two writers apart (SQLITE_PROTOCOL). No-op where no descriptor is open, where there is no
    ``/proc`` (Windows has no -shm mmap of this kind) or no ``posix_fallocate``."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = _open_descriptor(path)
    if fd is None:
        return
    size = os.fstat(fd).st_size
    if size:
        os.posix_fallocate(fd, 0, size)


def _open_descriptor(path: Path) -> int | None:
    """A descriptor of this process open on ``path`` (by device and inode), else None."""
    try:
        want = os.stat(path)
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        try:
            st = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            return int(name)
    return None


def release_reserve(path: Path) -> bool:
    """Give the reserve's space back to the disk; True when there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


__all__ = [
    "allocate",
    "atomic_write",
    "create_private",
    "free_bytes",
    "fsync_dir",
    "fsync_file",
    "keep_reserve",
    "private_dir",
    "private_file",
    "release_reserve",
]
