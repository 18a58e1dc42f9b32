"""Files made durable: written whole or not at all, folders and file systems synced, flocks asked.

`write_atomic` writes to a temporary name in the same folder, fsyncs it, gives it its mode,
renames it over the target and fsyncs the folder: a crash at any moment leaves either the old
file or the new one, never a half-written one. Every file standby rewrites in place (manifests,
catalog state, crontabs, units, configurations) goes through it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from standby.errors import VolumeError


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace `path` with `data` atomically. `mode`: the new file's permissions (default: the
    old file's, else 0o644). `VolumeError` (exit 4) if the folder cannot be written."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    raw = data.encode() if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise VolumeError(f"cannot write in {path.parent}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder `path` durable (after a rename or a create in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LIBC = ctypes.CDLL(None, use_errno=True)


def syncfs(path: Path) -> None:
    """Write back everything of the file system `path` is on (syncfs(2)): once, rather than
    fsyncing thousands of files one by one."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def flock_held(path: Path) -> bool:
    """True if some process holds an exclusive flock on the file `path` (False if it is
    missing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def link_or_copy(src: Path, dst: Path) -> None:
    """`dst` as the same file as `src` (a hard link), or a copy of it where a link cannot be
    made (another file system, a file system without links); its folder made first."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, dst)
