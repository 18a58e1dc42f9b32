"""btrfs read-only subvolume snapshots (`btrfs subvolume snapshot -r`).

Each volume is a btrfs subvolume (its path; `dataset`, if set, must name the same path). A
snapshot is a read-only subvolume at `<snapshot dir>/<volume>/<name>`, where the snapshot
directory (`snapshot.btrfs_snapshot_dir`, default `<volume's parent>/.standby-snapshots`) must
be on the same btrfs file system. btrfs flushes the subvolume's pending writes when it takes the
snapshot, so every write completed before the call is in it.

Identity: the snapshot's subvolume `uuid` (what `btrfs send`/`receive` match on), its
`parent_uuid` (the source subvolume), `generation` and subvolume `id`. btrfs has no way to
snapshot several subvolumes in one instant, so `--atomic` is refused.

Streams (`StreamingBackend`): `btrfs send [-p parent] snap` into `btrfs receive DIR`, which makes
the read-only subvolume `DIR/<snapshot name>` and sets its `received_uuid` to the sent
snapshot's uuid (or to that snapshot's own received uuid when it was itself received) as the
last step: a subvolume in DIR without one is an interrupted receive, which btrfs leaves behind
and `abort_receive` deletes. DIR must be a subvolume (`prepare_receive` makes it one) so that
`btrfs subvolume list -o` finds what is in it. btrfs streams cannot be resumed or sized in
advance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from standby import _process
from standby.errors import (
    CommandFailed,
    FormatError,
    NotFound,
    ServiceError,
    StandbyError,
    StateConflict,
    UsageError,
    VolumeError,
)
from standby.snapshot._base import (
    ErrorTable,
    Received,
    Snapshot,
    StreamTarget,
    Volume,
    error_text,
    host_name,
    translate_stream_error,
)
from standby.snapshot._fs import fs_type

Runner = Callable[..., _process.Result]
SNAPSHOT_DIR = ".standby-snapshots"


def snapshot_cmd(program: str, source: Path, dest: Path) -> _process.Command:
    return _process.Command.of(program, "subvolume", "snapshot", "-r", source, dest)


def show_cmd(program: str, path: Path) -> _process.Command:
    return _process.Command.of(program, "subvolume", "show", path)


def delete_cmd(program: str, path: Path) -> _process.Command:
    return _process.Command.of(program, "subvolume", "delete", path)


def send_cmd(program: str, snapshot: Path, parent: Path | None = None) -> _process.Command:
    """`btrfs send [-p parent] snap`: the full stream, or the changes since `parent`."""
    return _process.Command.of(program, "send", *(("-p", parent) if parent else ()), snapshot)


def receive_cmd(program: str, directory: Path) -> _process.Command:
    """`btrfs receive DIR`: the stream's subvolume appears as `DIR/<its name>`."""
    return _process.Command.of(program, "receive", directory)


def list_cmd(program: str, directory: Path) -> _process.Command:
    """The subvolumes below the one holding `directory`, with uuid, parent and received uuid."""
    return _process.Command.of(program, "subvolume", "list", "-o", "-R", "-u", "-q", directory)


def create_cmd(program: str, path: Path) -> _process.Command:
    return _process.Command.of(program, "subvolume", "create", path)


def mkdir_cmd(path: Path) -> _process.Command:
    return _process.Command.of("mkdir", "-p", path)


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


def show_path(text: str) -> str:
    """The first line of `btrfs subvolume show`: the subvolume's path from the file system's
    top level (`/` for the top level itself)."""
    return text.split("\n", 1)[0].strip()


_LIST = re.compile(r"^ID (\d+) gen (\d+) top level (\d+) parent_uuid (\S+)\s+"
                   r"received_uuid (\S+)\s+uuid (\S+) path (.+)$")
LIST_FIELDS = ("id", "gen", "top_level", "parent_uuid", "received_uuid", "uuid", "path")


def parse_list(text: str) -> list[dict[str, str]]:
    """`btrfs subvolume list -R -u -q` -> one {field: value} per subvolume (LIST_FIELDS; `-`
    for a uuid that is not set)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LIST.match(line)
        if not m:
            raise ServiceError(f"unexpected `btrfs subvolume list` output line: {line!r}")
        out.append(dict(zip(LIST_FIELDS, m.groups(), strict=True)))
    return out


def parse_received(text: str, directory_path: str, directory: Path) -> list[Received]:
    """`list_cmd` output -> the complete received snapshots directly in the directory whose
    path from the top level is `directory_path` (`show_path`), in the order received."""
    prefix = "" if directory_path in ("/", "") else directory_path.strip("/") + "/"
    rows = []
    for row in parse_list(text):
        rel = row["path"].removeprefix("<FS_TREE>/")
        name = rel[len(prefix):]
        if not rel.startswith(prefix) or not name or "/" in name or row["received_uuid"] == "-":
            continue
        ident: dict[str, Any] = {"uuid": row["uuid"], "received_uuid": row["received_uuid"],
                                 "id": int(row["id"]), "generation": int(row["gen"])}
        if row["parent_uuid"] != "-":
            ident["parent_uuid"] = row["parent_uuid"]
        rows.append(Received(name=name, ref=str(directory / name),
                             stream_id=row["received_uuid"], identity=ident))
    return sorted(rows, key=lambda r: r.identity["id"])


def identity_of(fields: Mapping[str, str]) -> dict[str, Any]:
    ident: dict[str, Any] = {}
    for key, name in (("UUID", "uuid"), ("Parent UUID", "parent_uuid"),
                      ("Received UUID", "received_uuid")):
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

    # -- StreamingBackend -------------------------------------------------------------------
    def send(self, snapshot: Snapshot, parent: Snapshot | None = None, *,
             remote: _process.Remote | None = None) -> _process.Command:
        return _process.located(send_cmd(self.program, Path(snapshot.ref),
                                         Path(parent.ref) if parent else None), remote)

    def receive(self, target: StreamTarget, *, resumable: bool = False,
                rollback: bool = False) -> _process.Command:
        if resumable:
            raise ServiceError("btrfs cannot resume an interrupted receive", hint=NO_RESUME_HINT)
        return _process.located(receive_cmd(self.program, _target_dir(target)), target.remote)

    def after_receive(self, target: StreamTarget) -> None:
        return None  # a received subvolume is new and read-only: nothing can be stale

    def stream_id(self, snapshot: Snapshot) -> str:
        # btrfs send puts the received uuid of a snapshot that was itself received into the
        # stream, its own uuid otherwise; the receiver records that as its received uuid.
        sid = snapshot.identity.get("received_uuid") or snapshot.identity.get("uuid")
        if not sid:
            raise FormatError(f"snapshot {snapshot.ref} has no btrfs uuid in its identity",
                              hint="its manifest is incomplete; take a new snapshot")
        return str(sid)

    def received(self, target: StreamTarget) -> list[Received]:
        directory = _target_dir(target)
        rel = self._show_at(target, directory)
        if rel is None:
            return []
        try:
            res = self._run(_process.located(list_cmd(self.program, directory), target.remote))
        except CommandFailed as e:
            raise ServiceError(f"cannot list the subvolumes at {target}: {e.message}") from e
        return parse_received(res.text, rel, directory)

    def prepare_receive(self, target: StreamTarget) -> None:
        directory = _target_dir(target)
        if self._show_at(target, directory) is not None:
            return
        try:
            self._run(_process.located(mkdir_cmd(directory.parent), target.remote))
            self._run(_process.located(create_cmd(self.program, directory), target.remote))
        except CommandFailed as e:
            raise VolumeError(f"cannot make {target} a btrfs subvolume to receive into: "
                              f"{error_text(e)}",
                              hint="it must be a subvolume on btrfs; move a plain directory "
                                   "there aside") from e

    def estimate(self, snapshot: Snapshot, parent: Snapshot | None = None) -> int | None:
        return None  # btrfs cannot size a stream without producing it

    def can_resume(self, target: StreamTarget, *, sender: _process.Remote | None = None) -> bool:
        return False

    def resume_token(self, target: StreamTarget) -> str | None:
        return None

    def resume_send(self, token: str, *, remote: _process.Remote | None = None
                    ) -> _process.Command:
        raise ServiceError("btrfs cannot resume an interrupted stream", hint=NO_RESUME_HINT)

    def abort_receive(self, target: StreamTarget, snapshot: Snapshot) -> list[str]:
        path = _target_dir(target) / snapshot.name
        res = self._run(_process.located(show_cmd(self.program, path), target.remote),
                        check=False)
        if res.returncode != 0:
            return []  # nothing there
        if parse_show(res.text).get("Received UUID", "-") != "-":
            return []  # complete: never touched
        try:
            self._run(_process.located(delete_cmd(self.program, path), target.remote))
        except CommandFailed as e:
            raise ServiceError(f"cannot delete the partial receive {path} at "
                               f"{host_name(target.remote)}: {error_text(e)}") from e
        return [str(path)]

    def destroy_received(self, target: StreamTarget, snapshot: Received) -> None:
        path = _target_dir(target) / snapshot.name
        if snapshot.ref != str(path):
            raise UsageError(f"{snapshot.ref} is not a snapshot in {target}")
        try:
            self._run(_process.located(delete_cmd(self.program, path), target.remote))
        except CommandFailed as e:
            if "No such file or directory" in e.stderr:
                return
            raise ServiceError(f"cannot delete {path} at {host_name(target.remote)}: "
                               f"{error_text(e)}") from e

    def stream_error(self, error: CommandFailed, target: StreamTarget) -> StandbyError:
        return translate_stream_error(error, target, _STREAM_ERRORS, "btrfs")

    def _show_at(self, target: StreamTarget, directory: Path) -> str | None:
        """`directory`'s path from the top level, None if it does not exist; `VolumeError` if
        it is not a subvolume."""
        res = self._run(_process.located(show_cmd(self.program, directory), target.remote),
                        check=False)
        if res.returncode == 0:
            return show_path(res.text)
        err = res.stderr.decode("utf-8", "replace")
        if "No such file or directory" in err:
            return None
        raise VolumeError(f"{target} is not a btrfs subvolume: {err.strip()}",
                          hint="receive into a subvolume (`btrfs subvolume create` it, or let "
                               "the target be prepared)")


NO_RESUME_HINT = ("an interrupted btrfs stream is sent again from its start, after "
                  "abort_receive removed what it left")

# What a failed `btrfs send | btrfs receive` says, and what it means (first match wins).
_STREAM_ERRORS: ErrorTable = (
    ("receive", "cannot find parent subvolume", NotFound,
     "{target} does not hold the incremental's parent", "send a full stream first"),
    ("receive", "File exists", StateConflict, "{target} already has a subvolume of that name",
     "if it is an interrupted receive, abort it; otherwise the snapshot is already there"),
    ("send", "unable to resolve|No such file", NotFound, "the snapshot to send is gone",
     "is it pruned? take a new one and send that"),
    ("send", "is not read-only", UsageError, "only read-only snapshots can be sent",
     "send a snapshot taken by standby, not the live subvolume"),
)


def _target_dir(t: StreamTarget) -> Path:
    p = Path(t.location)
    if not p.is_absolute() or str(p).startswith("-"):
        raise UsageError(f"{t.location!r} is not an absolute directory to receive into")
    return p
