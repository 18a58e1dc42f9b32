"""Plain-directory snapshots for development: a copy of the volume's folder.

Each file is cloned with the `FICLONE` ioctl (a reflink: instant, shares blocks) where the file
system supports it (btrfs, XFS with reflink, bcachefs), else copied (`copy_file_range`/
`sendfile` through shutil). A copy is not an instant snapshot, so this backend says `copies =
True` and the set executor freezes the store (and quiesces MariaDB until InnoDB is clean) for
the duration of each copy; the copy itself only has to be faithful.

The copy is made in `<dest>.partial` and renamed into place when complete, so a crash never
leaves something that looks like a snapshot. Runtime files that must not travel are left out:
`standby-owner.pid` (a copy that names the live `mariadbd` would stop MariaDB from starting on
it). Snapshots live in `<snapshot.dir_snapshot_dir or state_dir/snapshots>/<volume>/<name>`.

Identity: a random UUID written into the snapshot as `.standby-snapshot`, with the number of
files and bytes copied and how (`reflink`, `copy` or `mixed`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from standby.errors import ServiceError, StateConflict, UsageError, VolumeError
from standby.snapshot._base import Snapshot, Volume

FICLONE = 0x40049409
MARKER = ".standby-snapshot"
SKIP_NAMES = frozenset({"standby-owner.pid"})
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
               errno.EPERM}


class CopyStats:
    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self.cloned = 0
        self.reflink_ok = True  # until the file system says otherwise

    @property
    def method(self) -> str:
        if self.cloned == self.files:
            return "reflink"
        return "copy" if self.cloned == 0 else "mixed"


def clone_or_copy(src: str, dst: str, stats: CopyStats) -> None:
    """One regular file: reflink if possible, else a plain copy; metadata as `copy2`."""
    done = False
    if stats.reflink_ok:
        with open(src, "rb") as fs, open(dst, "wb") as fd:
            try:
                fcntl.ioctl(fd.fileno(), FICLONE, fs.fileno())
                done = True
            except OSError as e:
                if e.errno not in _NO_REFLINK:
                    raise
                stats.reflink_ok = False
    if done:
        stats.cloned += 1
        shutil.copystat(src, dst)
    else:
        shutil.copy2(src, dst)
    stats.files += 1
    stats.bytes += os.path.getsize(dst)


def copy_tree(src: Path, dst: Path) -> CopyStats:
    """Copy `src` to the new directory `dst` (files, directories, symlinks; no sockets)."""
    stats = CopyStats()
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        out = dst if rel == "." else dst / rel
        out.mkdir(parents=True, exist_ok=True)
        shutil.copystat(root, out)
        for name in dirs:
            p = os.path.join(root, name)
            if os.path.islink(p):
                os.symlink(os.readlink(p), out / name)
        for name in files:
            if name in SKIP_NAMES:
                continue
            p = os.path.join(root, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(p), out / name)
            elif stat.S_ISREG(st.st_mode):
                clone_or_copy(p, str(out / name), stats)
    return stats


class DirBackend:
    """`SnapshotBackend` that copies folders (any file system; reflinks where possible)."""

    name = "dir"
    copies = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dest(self, v: Volume, name: str) -> Path:
        return self.root / v.name / name

    def check(self, volume: Volume) -> None:
        p = volume.path
        if not p.is_dir():
            raise VolumeError(f"volume {volume.name}: {p} does not exist or is not a directory",
                              hint=f"create it or fix volumes.{volume.name}.path")
        vol, root = p.resolve(), self.root.resolve()
        if root == vol or vol in root.parents:
            raise VolumeError(f"volume {volume.name}: the snapshot directory {self.root} is "
                              f"inside the volume {p}; snapshots would copy themselves",
                              hint="set snapshot.dir_snapshot_dir outside the volumes")

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        if len(volumes) > 1:
            raise UsageError(
                "--atomic: the dir backend copies one volume at a time and cannot take "
                + ", ".join(v.name for v in volumes) + " in one instant",
                hint="take a staggered set (without --atomic), or put the volumes on ZFS")
        return [list(volumes)]

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        return [f"copy {v.path} -> {self._dest(v, name)} (reflink where possible)"
                for v in volumes]

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        if len(volumes) != 1:
            self.atomic_groups(volumes)
        (v,) = volumes
        dest = self._dest(v, name)
        if dest.exists():
            raise StateConflict(f"snapshot directory {dest} already exists")
        partial = dest.with_name(dest.name + ".partial")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            stats = copy_tree(v.path, partial)
            ident: dict[str, Any] = {"uuid": str(uuid.uuid4()), "files": stats.files,
                                     "bytes": stats.bytes, "method": stats.method}
            (partial / MARKER).write_text(json.dumps({**ident, **labels}, sort_keys=True))
            os.replace(partial, dest)
        except OSError as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise ServiceError(f"copy of volume {v.name} ({v.path}) to {dest} failed: "
                               f"{e.strerror or e}", hint="is there space left?") from e
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return [Snapshot(volume=v.name, backend=self.name, name=name, ref=str(dest),
                         identity=ident)]

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        return list(snapshots)

    def exists(self, snapshot: Snapshot) -> bool:
        return (Path(snapshot.ref) / MARKER).is_file()

    def destroy(self, snapshot: Snapshot) -> None:
        path = Path(snapshot.ref)
        if not path.exists():
            return
        # Clones of MariaDB data may be read-only; make them writable to remove them.
        for root, dirs, _files in os.walk(path):
            for d in dirs:
                try:
                    os.chmod(os.path.join(root, d), 0o755)
                except OSError:
                    pass
        try:
            shutil.rmtree(path)
        except OSError as e:
            raise ServiceError(f"cannot remove snapshot {path}: {e.strerror or e}") from e
