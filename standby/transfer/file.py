"""`file:///path`: an `ObjectStore` in a folder (a mounted NFS share, a USB disk, a local disk).

A server's objects live in `<path>/<server id>/<key>`. Every object is written as a hidden
`.<name>.<pid>.partial` beside its final name, fsynced and renamed into place (then the folder is
fsynced), so a reader never sees part of one and a crash leaves only hidden leftovers, which
listings skip and the next write of the same key replaces. The folder `<path>` itself must
exist: a share that is not mounted must not turn into a folder on the root file system.

An interrupted object is not continued (a local or NFS write costs little to repeat): the next
attempt starts it again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from standby.fsutil import write_atomic
from standby.errors import NotFound, ServiceError, VolumeError
from standby.transfer._base import WriteStats

CHUNK = 1 << 20


class DirStore:
    """An `ObjectStore` (and `KeyStore`) in `base/<server id>/`."""

    def __init__(self, base: Path, server_id: str, *, url: str) -> None:
        self.base = base
        self.root = base / server_id
        self.url = url

    def where(self) -> str:
        return f"{self.url.rstrip('/')}/{self.root.name}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def check(self, *, write: bool) -> None:
        if not self.base.is_dir():
            raise VolumeError(f"the target folder {self.base} does not exist or is not a folder",
                              hint="create it, or mount the share or disk there first")
        if write and not os.access(self.base, os.W_OK | os.X_OK):
            raise VolumeError(f"the target folder {self.base} is not writable by this user")

    # -- KeyStore ---------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        try:
            write_atomic(self._path(key), data)
        except OSError as e:
            raise _error("write", self._path(key), e) from e

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise NotFound(f"{self.where()}/{key} does not exist") from e
        except OSError as e:
            raise _error("read", self._path(key), e) from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        start = self.root / prefix if prefix else self.root
        for dirpath, dirs, files in os.walk(start):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            for name in files:
                if name.startswith("."):
                    continue  # partial writes and temporary files
                key = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
                try:
                    out[key] = os.stat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    continue  # removed while we listed
        return out

    def delete(self, key: str) -> None:
        p = self._path(key)
        try:
            p.unlink(missing_ok=True)
        except OSError as e:
            raise _error("remove", p, e) from e
        # Leave no empty folders behind, up to the server's folder.
        d = p.parent
        while d != self.root and self.root in d.parents:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent

    # -- ObjectStore ------------------------------------------------------------------------
    def read(self, key: str) -> Iterator[bytes]:
        p = self._path(key)
        try:
            f = open(p, "rb")
        except FileNotFoundError as e:
            raise NotFound(f"{self.where()}/{key} does not exist") from e
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    def open_write(self, key: str, *, resume: Mapping[str, Any] | None = None,
                   save: Callable[[dict[str, Any]], None] = lambda st: None) -> FileSink:
        sink = FileSink(self._path(key))
        if resume:
            sink.stats.restarted = "a file target writes an interrupted object again"
        return sink


class FileSink:
    """Writes `<dir>/.<name>.<pid>.partial`, renamed to `<dir>/<name>` by `commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self.stats = WriteStats()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f: IO[bytes] | None = open(self.tmp, "wb")
        except OSError as e:
            raise _error("write", self.tmp, e) from e

    def write(self, data: bytes) -> None:
        assert self._f is not None, "write after commit or abort"
        try:
            self._f.write(data)
        except OSError as e:
            self.abort()
            raise _error("write", self.tmp, e) from e
        self.stats.bytes_sent += len(data)

    def commit(self) -> None:
        assert self._f is not None, "commit after commit or abort"
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None
            os.replace(self.tmp, self.path)
            fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            self.abort()
            raise _error("write", self.path, e) from e
        self.stats.parts_sent = 1

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        self.tmp.unlink(missing_ok=True)


def _error(verb: str, path: Path, e: OSError) -> ServiceError:
    return ServiceError(f"cannot {verb} {path}: {e.strerror or e}",
                        hint="is the target's disk full, read-only or gone?")
