"""btrfs read-only subvolume snapshots (`btrfs subvolume snapshot -r`).

Each volume is a btrfs subvolume (its path; `dataset`, if set, must name the same path). A
snapshot is a read-only subvolume at `<snapshot dir>/<volume>/<name>`, where the snapshot
directory (`snapshot.btrfs_snapshot_dir`, default `<volume's parent>/.standby-snapshots`) must
be on the same btrfs file system. btrfs flushes the subvolume's pending writes when it takes the
snapshot, so every write completed before the call is in it.

Identity: the snapshot's subvolume `uuid` (what `btrfs send`/`receive` match on), its
`parent_uuid` (the source subvolume), `generation` and subvolume `id`. btrfs has no way to
snapshot several subvolumes in one instant, so `--atomic` is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from standby import _process
from standby.errors import CommandFailed, ServiceError, StateConflict, UsageError, VolumeError
from standby.snapshot._base import Snapshot, Volume
from standby.snapshot._fs import fs_type

Runner = Callable[..., _process.Result]
SNAPSHOT_DIR = ".standby-snapshots"


def snapshot_cmd(program: str, source: Path, dest: Path) -> _process.Command:
    return _process.Command.of(program, "subvolume", "snapshot", "-r", source, dest)


def show_cmd(program: str, path: Path) -> _process.Command:
    return _process.Command.of(program, "subvolume", "show", path)


def delete_cmd(program: str, path: Path) -> _process.Command:
    return _process.Command.of(program, "subvolume", "delete", path)


_FIELD = re.compile(r"^\s+([A-Za-z][A-Za-z ()]*?):\s*(.*?)\s*$")


def parse_show(text: str) -> dict[str, str]:
    """`btrfs subvolume show` -> {field: value} ("UUID", "Parent UUID", "Generation", ...).
    The first line is the path; the `Snapshot(s):` list that ends the output is ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        m = _FIELD.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if key == "Snapshot(s)":
            break
        out[key] = value
    return out


def identity_of(fields: Mapping[str, str]) -> dict[str, Any]:
    ident: dict[str, Any] = {}
    for key, name in (("UUID", "uuid"), ("Parent UUID", "parent_uuid")):
        v = fields.get(key, "-")
        if v and v != "-":
            ident[name] = v
    for key, name in (("Generation", "generation"), ("Subvolume ID", "id")):
        v = fields.get(key, "")
        if v.isdigit():
            ident[name] = int(v)
    return ident


class BtrfsBackend:
    """`SnapshotBackend` for btrfs subvolumes."""

    name = "btrfs"
    copies = False

    def __init__(self, *, program: str = "btrfs", snapshot_dir: Path | None = None,
                 run: Runner = _process.run, fs_type_of: Callable[[Path], str] = fs_type) -> None:
        self.program = program
        self.snapshot_dir = snapshot_dir
        self._run = run
        self._fs_type = fs_type_of

    def _dir_for(self, v: Volume) -> Path:
        base = self.snapshot_dir or (v.path.resolve().parent / SNAPSHOT_DIR)
        return base / v.name

    def _show(self, path: Path) -> dict[str, str] | None:
        res = self._run(show_cmd(self.program, path), check=False)
        if res.returncode != 0:
            return None
        return parse_show(res.text)

    def check(self, volume: Volume) -> None:
        path = volume.path
        if volume.dataset and Path(volume.dataset).resolve() != path.resolve():
            raise VolumeError(f"volume {volume.name}: dataset {volume.dataset} is not the "
                              f"volume's path {path}",
                              hint="for btrfs the subvolume is the volume's path; drop dataset")
        if not path.is_dir():
            raise VolumeError(f"volume {volume.name}: {path} does not exist")
        fst = self._fs_type(path)
        if fst != "btrfs":
            raise VolumeError(f"volume {volume.name}: {path} is on {fst}, not btrfs; the btrfs "
                              "backend cannot snapshot it",
                              hint=f"choose the backend for {fst} in volumes.{volume.name}."
                                   "backend (dir works anywhere)")
        if self._show(path) is None:
            raise VolumeError(f"volume {volume.name}: {path} is on btrfs but is not a subvolume",
                              hint=f"make it one: `btrfs subvolume create {path}` and move the "
                                   "data in")
        snapdir = self._dir_for(volume)
        probe = snapdir if snapdir.exists() else snapdir.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if self._fs_type(probe) != "btrfs":
            raise VolumeError(f"volume {volume.name}: the snapshot directory {snapdir} is not on "
                              "btrfs", hint="set snapshot.btrfs_snapshot_dir on the same btrfs")

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        if len(volumes) > 1:
            raise UsageError(
                "--atomic: btrfs cannot snapshot several subvolumes in one instant ("
                + ", ".join(v.name for v in volumes) + ")",
                hint="take a staggered set (without --atomic); replay makes it consistent")
        return [list(volumes)]

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        return [str(snapshot_cmd(self.program, v.path, self._dir_for(v) / name))
                for v in volumes]

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        if len(volumes) != 1:
            self.atomic_groups(volumes)
        (v,) = volumes
        dest = self._dir_for(v) / name
        if dest.exists():
            raise StateConflict(f"btrfs snapshot {dest} already exists")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VolumeError(f"cannot create the snapshot directory {dest.parent}: "
                              f"{e.strerror}") from e
        try:
            self._run(snapshot_cmd(self.program, v.path, dest))
        except CommandFailed as e:
            raise ServiceError(f"btrfs snapshot of volume {v.name} ({v.path}) failed: "
                               f"{e.message}") from e
        fields = self._show(dest)
        if fields is None:
            self.destroy(Snapshot(v.name, self.name, name, str(dest)))
            raise ServiceError(f"btrfs snapshot {dest} was made but cannot be read back")
        return [Snapshot(volume=v.name, backend=self.name, name=name, ref=str(dest),
                         identity=identity_of(fields))]

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        return list(snapshots)

    def exists(self, snapshot: Snapshot) -> bool:
        return Path(snapshot.ref).exists() and self._show(Path(snapshot.ref)) is not None

    def destroy(self, snapshot: Snapshot) -> None:
        path = Path(snapshot.ref)
        if not path.exists():
            return
        try:
            self._run(delete_cmd(self.program, path))
        except CommandFailed as e:
            raise ServiceError(f"cannot delete btrfs snapshot {path}: {e.message}") from e
