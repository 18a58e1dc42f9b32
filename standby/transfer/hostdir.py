"""A folder on this host or on another over ssh, as the `KeyStore` of a zfs/btrfs target's catalog.

A zfs or btrfs target keeps its received snapshots as snapshots; its catalog (manifests, records)
lives as files in `<the target's folder>/.standby/<server id>/`: for btrfs the target path, for
zfs the mountpoint of the target's dataset (`findmnt` finds it; a dataset that is not mounted
cannot hold a catalog). On this host that is a `file.DirStore`; on another, `SshDirStore` runs
the few POSIX tools it needs there over ssh (`_process.over_ssh`, one argv each, quoted by
`shlex.join`): `find` lists, `cat` reads, `dd conv=fsync` writes a hidden temporary file that
`mv` renames into place (a reader sees a whole document or none), `rm -f` removes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import PurePosixPath

from standby import _process
from standby.errors import CommandFailed, NotFound, ServiceError, VolumeError

CATALOG = ".standby"


def mountpoint_cmd(dataset: str) -> _process.Command:
    """`findmnt -n -o TARGET -S DATASET`: where a (zfs) file system is mounted."""
    return _process.Command(("findmnt", "-n", "-o", "TARGET", "-S", dataset))


def parse_mountpoint(text: str) -> str | None:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else None


def catalog_folder(kind: str, path: str, remote: _process.Remote | None,
                   run: Callable[..., _process.Result] = _process.run) -> str | None:
    """The folder a zfs or btrfs target keeps its catalog in, on its host; None when a zfs
    target's dataset is not mounted there (not made yet, or unmounted)."""
    if kind == "btrfs":
        return f"{path.rstrip('/')}/{CATALOG}"
    res = run(_process.located(mountpoint_cmd(path), remote), check=False)
    mnt = parse_mountpoint(res.text) if res.returncode == 0 else None
    return None if mnt is None else f"{mnt.rstrip('/')}/{CATALOG}"


class Unmounted:
    """The `KeyStore` of a zfs target whose dataset is not mounted: it holds nothing (what a
    dry run or a pull sees), and cannot take anything."""

    def __init__(self, dataset: str, where: str) -> None:
        self.dataset = dataset
        self._where = where

    def where(self) -> str:
        return self._where

    def put(self, key: str, data: bytes) -> None:
        raise VolumeError(f"the ZFS dataset {self.dataset} is not mounted; the target keeps "
                          "its catalog in its mountpoint",
                          hint=f"mount it, or give it a mountpoint (`zfs set mountpoint=... "
                               f"{self.dataset}`)")

    def get(self, key: str) -> bytes:
        raise NotFound(f"{self._where}/{key} does not exist (the dataset is not mounted)")

    def exists(self, key: str) -> bool:
        return False

    def list(self, prefix: str = "") -> dict[str, int]:
        return {}

    def delete(self, key: str) -> None:
        return None


def list_cmd(root: str) -> _process.Command:
    return _process.Command(("find", root, "-type", "f", "-not", "-name", ".*",
                             "-printf", "%P\\t%s\\n"))


def parse_list(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line:
            continue
        key, _, size = line.rpartition("\t")
        out[key] = int(size)
    return out


class SshDirStore:
    """A `KeyStore` in `root` on `remote`."""

    def __init__(self, remote: _process.Remote, root: str, *, where: str,
                 run: Callable[..., _process.Result] = _process.run) -> None:
        self.remote = remote
        self.root = PurePosixPath(root)
        self._where = where
        self._run = run
        self._made: set[str] = set()  # folders known to exist there

    def where(self) -> str:
        return self._where

    def _at(self, *argv: str) -> _process.Command:
        return _process.over_ssh(_process.Command(tuple(argv)), self.remote)

    def _path(self, key: str) -> str:
        return str(self.root / key)

    def put(self, key: str, data: bytes) -> None:
        p = PurePosixPath(self._path(key))
        tmp = str(p.with_name(f".{p.name}.partial"))
        try:
            if str(p.parent) not in self._made:
                self._run(self._at("mkdir", "-p", str(p.parent)))
                self._made.add(str(p.parent))
            _process.write_into(self._at("dd", f"of={tmp}", "conv=fsync", "status=none"), [data])
            self._run(self._at("mv", "-f", tmp, str(p)))
        except CommandFailed as e:
            raise ServiceError(f"cannot write {self._where}/{key} at {self.remote}: "
                               f"{e.message}") from e

    def get(self, key: str) -> bytes:
        res = self._run(self._at("cat", self._path(key)), check=False)
        if res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace")
            if "No such file" in err:
                raise NotFound(f"{self._where}/{key} does not exist")
            raise ServiceError(f"cannot read {self._where}/{key} at {self.remote}: {err.strip()}")
        return res.stdout

    def exists(self, key: str) -> bool:
        return self._run(self._at("test", "-f", self._path(key)), check=False).returncode == 0

    def list(self, prefix: str = "") -> dict[str, int]:
        root = str(self.root / prefix) if prefix else str(self.root)
        res = self._run(self._at(*list_cmd(root).argv), check=False)
        if res.returncode != 0:
            if "No such file" in res.stderr.decode("utf-8", "replace"):
                return {}
            raise ServiceError(f"cannot list {self._where} at {self.remote}: "
                               f"{res.stderr.decode('utf-8', 'replace').strip()}")
        found = parse_list(res.text)
        return {(f"{prefix.rstrip('/')}/{k}" if prefix else k): v for k, v in found.items()}

    def delete(self, key: str) -> None:
        self._run(self._at("rm", "-f", self._path(key)))

    def read(self, key: str) -> Iterator[bytes]:
        yield self.get(key)
