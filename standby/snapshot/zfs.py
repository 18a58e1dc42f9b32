"""ZFS snapshots through the `zfs` command (and libzfs_core through pyzfs when importable).

Two generations of ZFS are served, capabilities detected once per backend:

- modern OpenZFS: `zfs snapshot a@x b@x ...` takes several snapshots in one transaction group
  (one instant), as does `lzc_snapshot` from pyzfs;
- zfs-fuse (pool version 23): one snapshot name per call, but `zfs snapshot -r parent@x` is one
  transaction group for a dataset and its descendants. An atomic set then snapshots the volumes'
  closest common ancestor recursively and destroys, right away, the snapshots of every dataset
  in that subtree that is not a volume.

Identity recorded per snapshot: `guid` and `createtxg` (hidden properties that `zfs get -p`
returns on both generations although `zfs get all` does not list them on zfs-fuse), and the
`creation` time in epoch seconds. Snapshots that share a `createtxg` were taken in one instant.

Streams (`StreamingBackend`): `zfs send [-i parent] snap` into `zfs recv [-F] dataset`, the
received snapshot keeping the sender's `guid` (the stream's identity). What the tool can do is
read from its usage text once per host (the sender's and the receiver's may differ), never
assumed:

- resume needs `recv -s`, `recv -A` and `send -t` (OpenZFS 0.7 on); zfs-fuse (pool version 23)
  has none of them: `send [-RDp] [-[iI] snapshot]`, `receive [-vnF]`. It discards an
  interrupted receive itself, a moment after the stream's pipe closes (`abort_receive` waits
  for that), so there a stream restarts from its beginning;
- an exact size needs `send -nP`; zfs-fuse lacks it, and a full stream is then estimated by the
  snapshot's `referenced` bytes, an incremental not at all;
- zfs-fuse keeps serving a mounted dataset's old file data after an incremental receive into
  it, until it is remounted: `after_receive` remounts.

Build, run, parse apart: `*_cmd` functions build `Command`s, `parse_*` functions read bytes,
`ZfsBackend` runs them through the injected runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from standby import _process
from standby import log as slog
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

from standby.snapshot.zfs_cli import (
    IDENTITY_PROPS,
    abort_receive_cmd,
    common_ancestor,
    create_parents_cmd,
    destroy_cmd,
    estimate_cmd,
    get_cmd,
    identity_of,
    list_tree_cmd,
    mount_cmd,
    parse_estimate,
    parse_get,
    parse_multi_snapshot,
    parse_names,
    parse_received,
    parse_usage_flags,
    pool_of,
    receive_cmd,
    received_cmd,
    resume_send_cmd,
    send_cmd,
    snapshot_cmd,
    unmount_cmd,
    usage_cmd,
)

Runner = Callable[..., _process.Result]



# --------------------------------------------------------------------------------------------
# The backend


@dataclass(frozen=True)
class Capabilities:
    multi_snapshot: bool  # `zfs snapshot a@x b@x` in one call (one txg)
    lzc: bool  # libzfs_core (pyzfs) is importable and used


@dataclass(frozen=True)
class StreamCapabilities:
    """What one host's `zfs` can do with streams (read from its usage text)."""

    send_token: bool  # `send -t TOKEN`
    recv_resumable: bool  # `recv -s` and `recv -A`
    estimate: bool  # `send -nP`

    @classmethod
    def of(cls, send_flags: frozenset[str], recv_flags: frozenset[str]) -> StreamCapabilities:
        return cls(send_token="t" in send_flags, recv_resumable={"s", "A"} <= recv_flags,
                   estimate={"n", "P"} <= send_flags)


NO_RESUME_HINT = ("zfs-fuse and ZFS before OpenZFS 0.7 have no resumable streams; an "
                  "interrupted stream is then discarded at the target and sent again from its "
                  "start")


def _load_lzc() -> Any | None:
    try:
        import libzfs_core  # type: ignore[import-not-found]
    except ImportError:
        return None
    return libzfs_core


class ZfsBackend:
    """`SnapshotBackend` for ZFS datasets (`volumes.<name>.dataset = "pool/fs"`)."""

    name = "zfs"
    copies = False

    #: how long `abort_receive` waits for zfs-fuse to discard an interrupted receive (30 s
    #: was once too short on this project's busy 2-core machine)
    discard_wait_s = 90.0

    def __init__(self, *, program: str = "zfs", run: Runner = _process.run,
                 lzc: Any | None = None, use_lzc: bool = True,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.program = program
        self._run = run
        self._sleep, self._clock = sleep, clock
        self._lzc = lzc if lzc is not None else (_load_lzc() if use_lzc else None)
        self._caps: Capabilities | None = None
        self._stream_caps: dict[_process.Remote | None, StreamCapabilities] = {}
        self.log = slog.get("standby.snapshot.zfs")

    # -- capabilities -----------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        if self._caps is None:
            res = self._run(usage_cmd(self.program), check=False)
            multi = parse_multi_snapshot(res.stderr.decode("utf-8", "replace") + res.text)
            self._caps = Capabilities(multi_snapshot=multi or self._lzc is not None,
                                      lzc=self._lzc is not None)
            self.log.debug("zfs_capabilities", multi=self._caps.multi_snapshot,
                           lzc=self._caps.lzc)
        return self._caps

    # -- SnapshotBackend --------------------------------------------------------------------
    def check(self, volume: Volume) -> None:
        ds = _dataset(volume)
        try:
            res = self._run(get_cmd(self.program, ("type", "mountpoint"), [ds]))
        except CommandFailed as e:
            if "does not exist" in e.stderr:
                raise VolumeError(f"volume {volume.name}: ZFS dataset {ds!r} does not exist",
                                  hint=f"create it (`zfs create -o mountpoint={volume.path} "
                                       f"{ds}`) or fix volumes.{volume.name}.dataset") from e
            raise ServiceError(f"volume {volume.name}: cannot read ZFS dataset {ds!r}: "
                               f"{e.message}") from e
        props = parse_get(res.text).get(ds, {})
        if props.get("type") not in ("filesystem", "volume"):
            raise VolumeError(f"volume {volume.name}: {ds!r} is a ZFS {props.get('type')}, "
                              "not a file system", hint="name the dataset, not a snapshot")
        mnt = props.get("mountpoint", "")
        if props.get("type") == "filesystem" and mnt != str(volume.path.resolve()):
            raise VolumeError(
                f"volume {volume.name}: {volume.path} is not where ZFS dataset {ds!r} is "
                f"mounted ({mnt}); a snapshot of the dataset would not hold the volume's data",
                hint=f"set volumes.{volume.name}.path to {mnt}, or "
                     f"`zfs set mountpoint={volume.path} {ds}`")

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        by_pool: dict[str, list[Volume]] = {}
        for v in volumes:
            by_pool.setdefault(pool_of(_dataset(v)), []).append(v)
        return list(by_pool.values())

    def recursive_root(self, volumes: Sequence[Volume]) -> str | None:
        """On ZFS without multi-name snapshots: the dataset whose `-r` snapshot covers the
        group (None when one call with several names does it)."""
        if len(volumes) < 2 or self.capabilities.multi_snapshot:
            return None
        return common_ancestor([_dataset(v) for v in volumes])

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        names = [f"{_dataset(v)}@{name}" for v in volumes]
        root = self.recursive_root(volumes)
        if root is not None:
            extra = [d for d in self._tree(root) if d not in {_dataset(v) for v in volumes}]
            lines = [str(snapshot_cmd(self.program, [f"{root}@{name}"], recursive=True))]
            lines += [str(destroy_cmd(self.program, f"{d}@{name}")) for d in extra]
            return lines
        if len(names) > 1 and self._lzc is not None:
            return ["lzc_snapshot([" + ", ".join(names) + "])"]
        return [str(snapshot_cmd(self.program, names))]

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        names = [f"{_dataset(v)}@{name}" for v in volumes]
        root = self.recursive_root(volumes)
        if root is not None:
            self._snapshot_recursive(root, name, keep={_dataset(v) for v in volumes})
        elif len(names) > 1 and self._lzc is not None:
            self._snapshot_lzc(names)
        else:
            self._snapshot(names)
        try:
            props = parse_get(self._run(get_cmd(self.program, IDENTITY_PROPS, names)).text)
        except StandbyError:
            for n in names:
                self._destroy_quietly(n)
            raise
        return [Snapshot(volume=v.name, backend=self.name, name=name, ref=n,
                         identity=identity_of(props.get(n, {})))
                for v, n in zip(volumes, names, strict=True)]

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        return list(snapshots)  # a ZFS snapshot is complete when the command returns

    def exists(self, snapshot: Snapshot) -> bool:
        res = self._run(get_cmd(self.program, ("type",), [snapshot.ref]), check=False)
        return res.returncode == 0 and parse_get(res.text).get(snapshot.ref, {}).get(
            "type") == "snapshot"

    def destroy(self, snapshot: Snapshot) -> None:
        try:
            self._run(destroy_cmd(self.program, snapshot.ref))
        except CommandFailed as e:
            if _gone(e.stderr):
                return
            raise ServiceError(f"cannot destroy ZFS snapshot {snapshot.ref}: {error_text(e)}",
                               hint="is it held (`zfs holds`) or does a clone depend on it?"
                               ) from e

    # -- StreamingBackend -------------------------------------------------------------------
    def stream_capabilities(self, remote: _process.Remote | None = None) -> StreamCapabilities:
        """What the `zfs` on `remote` (None: here) can do with streams; asked once per host."""
        if remote not in self._stream_caps:
            flags = []
            for command in ("send", "receive"):
                res = self._run_at(remote, usage_cmd(self.program, command), check=False)
                flags.append(parse_usage_flags(res.stderr.decode("utf-8", "replace") + res.text))
            caps = StreamCapabilities.of(*flags)
            self._stream_caps[remote] = caps
            self.log.debug("zfs_stream_capabilities", host=str(remote or "local"),
                           resume=caps.send_token and caps.recv_resumable,
                           estimate=caps.estimate)
        return self._stream_caps[remote]

    def send(self, snapshot: Snapshot, parent: Snapshot | None = None, *,
             remote: _process.Remote | None = None) -> _process.Command:
        ds = _snapshot_dataset(snapshot)
        if parent is not None and _snapshot_dataset(parent) != ds:
            raise UsageError(f"cannot send {snapshot.ref} incrementally from {parent.ref}: "
                             "the parent must be a snapshot of the same dataset")
        return _process.located(send_cmd(self.program, snapshot.ref,
                                         parent.ref if parent else None), remote)

    def receive(self, target: StreamTarget, *, resumable: bool = False,
                rollback: bool = False) -> _process.Command:
        ds = _target_dataset(target)
        if resumable and not self.stream_capabilities(target.remote).recv_resumable:
            raise ServiceError(f"the zfs at {host_name(target.remote)} cannot keep a partial "
                               "receive (`zfs recv -s`)", hint=NO_RESUME_HINT)
        return _process.located(receive_cmd(self.program, ds, resumable=resumable,
                                            rollback=rollback), target.remote)

    def after_receive(self, target: StreamTarget) -> None:
        ds = _target_dataset(target)
        if self._prop(ds, "mounted", target.remote) != "yes":
            return
        # zfs-fuse does not drop the FUSE caches of a dataset an incremental receive changed:
        # without a remount its files read as they were before the receive.
        try:
            self._run_at(target.remote, unmount_cmd(self.program, ds))
        except CommandFailed as e:
            raise StateConflict(f"cannot remount {target} after receiving into it: "
                                f"{error_text(e)}",
                                hint="stop what holds files open there and retry") from e
        try:
            self._run_at(target.remote, mount_cmd(self.program, ds))
        except CommandFailed as e:
            raise ServiceError(f"{target} was unmounted to refresh it but does not mount "
                               f"again: {error_text(e)}", hint=f"`zfs mount {ds}` there") from e

    def stream_id(self, snapshot: Snapshot) -> str:
        guid = snapshot.identity.get("guid")
        if not guid:
            raise FormatError(f"snapshot {snapshot.ref} has no ZFS guid in its identity",
                              hint="its manifest is incomplete; take a new snapshot")
        return str(guid)

    def received(self, target: StreamTarget) -> list[Received]:
        ds = _target_dataset(target)
        try:
            res = self._run_at(target.remote, received_cmd(self.program, ds))
        except CommandFailed as e:
            if "does not exist" in e.stderr:
                return []
            raise ServiceError(f"cannot list the snapshots at {target}: {error_text(e)}") from e
        return parse_received(res.text, ds)

    def prepare_receive(self, target: StreamTarget) -> None:
        ds = _target_dataset(target)
        parent = ds.rsplit("/", 1)[0]
        kind = self._prop(parent, "type", target.remote)
        if kind is not None:
            if kind != "filesystem":
                raise VolumeError(f"{parent} at {host_name(target.remote)} is a ZFS {kind}, "
                                  f"not a file system, so {ds} cannot be received below it")
            return
        try:
            self._run_at(target.remote, create_parents_cmd(self.program, parent))
        except CommandFailed as e:
            raise VolumeError(f"cannot create ZFS dataset {parent} at {host_name(target.remote)}: "
                              f"{error_text(e)}", hint="does its pool exist there?") from e

    def estimate(self, snapshot: Snapshot, parent: Snapshot | None = None) -> int | None:
        if self.stream_capabilities().estimate:
            cmd = estimate_cmd(self.program, snapshot.ref, parent.ref if parent else None)
            try:
                res = self._run(cmd)
            except CommandFailed as e:
                raise self.stream_error(e, StreamTarget("(estimate)")) from e
            return parse_estimate(res.text) or parse_estimate(
                res.stderr.decode("utf-8", "replace"))
        if parent is not None:
            return None  # zfs-fuse has no `written@` either: only sending would tell
        value = self._prop(snapshot.ref, "referenced", None) or ""
        return int(value) if value.isdigit() else None

    def can_resume(self, target: StreamTarget, *, sender: _process.Remote | None = None) -> bool:
        return (self.stream_capabilities(sender).send_token
                and self.stream_capabilities(target.remote).recv_resumable)

    def resume_token(self, target: StreamTarget) -> str | None:
        ds = _target_dataset(target)
        if not self.stream_capabilities(target.remote).recv_resumable:
            return None  # such a zfs discards an interrupted receive: there is never a token
        token = self._prop(ds, "receive_resume_token", target.remote)
        return None if token in (None, "-", "") else token

    def resume_send(self, token: str, *, remote: _process.Remote | None = None
                    ) -> _process.Command:
        if not self.stream_capabilities(remote).send_token:
            raise ServiceError(f"the zfs at {host_name(remote)} cannot resume a stream "
                               "(`zfs send -t`)", hint=NO_RESUME_HINT)
        if not token or any(c.isspace() for c in token):
            raise UsageError(f"{token!r} is not a ZFS receive_resume_token")
        return _process.located(resume_send_cmd(self.program, token), remote)

    def abort_receive(self, target: StreamTarget, snapshot: Snapshot) -> list[str]:
        ds = _target_dataset(target)
        if not self.stream_capabilities(target.remote).recv_resumable:
            self._wait_discarded(target, ds, snapshot.name)
            return []
        if self.resume_token(target) is None:
            return []
        try:
            self._run_at(target.remote, abort_receive_cmd(self.program, ds))
        except CommandFailed as e:
            raise ServiceError(f"cannot discard the partial receive at {target}: {error_text(e)}"
                               ) from e
        return [f"{target} (partial receive of {snapshot.name})"]

    def destroy_received(self, target: StreamTarget, snapshot: Received) -> None:
        ds = _target_dataset(target)
        if snapshot.ref != f"{ds}@{snapshot.name}":
            raise UsageError(f"{snapshot.ref} is not a snapshot of {target}")
        try:
            self._run_at(target.remote, destroy_cmd(self.program, snapshot.ref))
        except CommandFailed as e:
            if _gone(e.stderr):
                return
            raise ServiceError(f"cannot destroy {snapshot.ref} at {host_name(target.remote)}: "
                               f"{error_text(e)}",
                               hint="is it held, or the origin of a clone there?") from e

    def stream_error(self, error: CommandFailed, target: StreamTarget) -> StandbyError:
        return translate_stream_error(error, target, _STREAM_ERRORS, "zfs")

    # -- helpers ----------------------------------------------------------------------------
    def _wait_discarded(self, target: StreamTarget, ds: str, name: str) -> None:
        """Wait until zfs has discarded what an interrupted non-resumable receive of snapshot
        `name` left: zfs-fuse goes on reading the stream after its `zfs recv` was killed and
        drops the half-received dataset (a full stream) or its temporary clone `ds/%<name>` (an
        increment) only after the pipe closed, a moment later; a receive retried before then
        finds the target taken or busy."""
        deadline = self._clock() + self.discard_wait_s
        while (left := self._receive_leftover(ds, name, target.remote)) is not None:
            if self._clock() >= deadline:
                dataset, what = left
                raise StateConflict(
                    f"{target}: {what} after {self.discard_wait_s:g} s; an interrupted receive "
                    "is still being discarded, or it was made by hand",
                    hint=f"retry later; if it holds nothing you need, `zfs destroy {dataset}` "
                         "there")
            self._sleep(0.1)

    def _receive_leftover(self, ds: str, name: str, remote: _process.Remote | None
                          ) -> tuple[str, str] | None:
        """The dataset an interrupted receive left, and what is wrong with it; None if none."""
        res = self._run_at(remote, received_cmd(self.program, ds), check=False)
        if res.returncode != 0:
            if "does not exist" in res.stderr.decode("utf-8", "replace"):
                return None
            raise ServiceError(f"cannot look at ZFS {ds} at {host_name(remote)}: "
                               f"{res.stderr.decode('utf-8', 'replace').strip()}")
        if not parse_received(res.text, ds):
            return ds, f"{ds} exists without any snapshot"
        for clone in (f"{ds}/%{name}", f"{ds}/%recv"):  # pool version 23; OpenZFS
            if self._prop(clone, "type", remote) is not None:
                return clone, f"{clone} exists"
        return None

    def _run_at(self, remote: _process.Remote | None, cmd: _process.Command, *,
                check: bool = True) -> _process.Result:
        return self._run(_process.located(cmd, remote), check=check)

    def _prop(self, name: str, prop: str, remote: _process.Remote | None) -> str | None:
        """One property of a dataset or snapshot on `remote`; None if it does not exist."""
        res = self._run_at(remote, get_cmd(self.program, (prop,), [name]), check=False)
        if res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace")
            if "does not exist" in err:
                return None
            raise ServiceError(f"cannot read {prop} of ZFS {name} at {host_name(remote)}: "
                               f"{err.strip()}")
        return parse_get(res.text).get(name, {}).get(prop)

    def _snapshot(self, names: Sequence[str]) -> None:
        try:
            self._run(snapshot_cmd(self.program, names))
        except CommandFailed as e:
            raise _translate(e, names) from e

    def _snapshot_lzc(self, names: Sequence[str]) -> None:
        try:
            self._lzc.lzc_snapshot([n.encode() for n in names])  # type: ignore[union-attr]
        except Exception as e:  # pyzfs raises its own exception tree; translated here
            raise ServiceError(f"lzc_snapshot of {', '.join(names)} failed: {e}") from e

    def _snapshot_recursive(self, root: str, name: str, *, keep: set[str]) -> None:
        try:
            self._run(snapshot_cmd(self.program, [f"{root}@{name}"], recursive=True))
        except CommandFailed as e:
            raise _translate(e, [f"{root}@{name}"]) from e
        for ds in self._tree(root):
            if ds not in keep:
                # Not a volume: its snapshot only came along with `-r`.
                self._destroy_quietly(f"{ds}@{name}")

    def _tree(self, root: str) -> list[str]:
        try:
            return parse_names(self._run(list_tree_cmd(self.program, root)).text)
        except CommandFailed as e:
            raise ServiceError(f"cannot list ZFS datasets under {root}: {error_text(e)}") from e

    def _destroy_quietly(self, ref: str) -> None:
        try:
            self._run(destroy_cmd(self.program, ref))
        except CommandFailed as e:
            if not _gone(e.stderr):
                self.log.warning("zfs_destroy_failed", snapshot=ref, error=error_text(e))


def _dataset(v: Volume) -> str:
    if not v.dataset:
        raise VolumeError(f"volume {v.name}: the zfs backend needs volumes.{v.name}.dataset")
    return v.dataset


def _snapshot_dataset(s: Snapshot) -> str:
    ds, at, name = s.ref.partition("@")
    if not at or not ds or not name:
        raise UsageError(f"{s.ref!r} is not a ZFS snapshot (pool/dataset@name)")
    return ds


def _target_dataset(t: StreamTarget) -> str:
    ds = t.location.strip("/")
    if not ds or "@" in ds or ds.startswith("-") or any(c.isspace() for c in ds):
        raise UsageError(f"{t.location!r} is not a ZFS dataset to receive into",
                         hint="name it as pool/dataset")
    if "/" not in ds:
        raise UsageError(f"cannot receive into the pool's root dataset {ds!r}",
                         hint=f"receive into a dataset below it, e.g. {ds}/standby/<volume>")
    return ds


# What a failed `zfs send | zfs recv` says, and what it means to a person (first match wins).
_STREAM_ERRORS: ErrorTable = (
    ("receive", "does not match incremental source", NotFound,
     "{target}: its newest snapshot is not the incremental's parent",
     ("send incrementally from the newest snapshot both sides hold, or a full stream into a "
      "new dataset")),
    ("receive", "incremental stream: destination '[^']*' does not exist", NotFound,
     "{target} does not hold the incremental's parent", "send a full stream first"),
    ("receive", "has been modified", StateConflict,
     "{target} was changed since its newest snapshot (a read with atime on is enough)",
     "receive with rollback, or set readonly=on on the standby's datasets"),
    ("receive", "destination has snapshots", StateConflict,
     "{target} already has snapshots; a full stream cannot replace them",
     "send incrementally from a snapshot it holds"),
    ("receive", "destination '[^']*' exists", StateConflict,
     "{target} already exists; a full stream cannot replace it",
     "send incrementally, or receive into a new dataset"),
    ("receive", "dataset is busy", StateConflict,
     "{target} is busy, most likely still discarding an interrupted receive",
     "abort the receive (that waits until zfs is done with it), then send again"),
    ("receive", "dataset does not exist", VolumeError,
     "the parent dataset of {target} does not exist",
     "prepare the target (its parent dataset) first"),
    ("send", "does not exist", NotFound, "the snapshot to send is gone",
     "is it pruned? take a new one and send that"),
)


def _gone(stderr: str) -> bool:
    return "does not exist" in stderr or "could not find any snapshots" in stderr


def _translate(e: CommandFailed, names: Sequence[str]) -> StandbyError:
    err = e.stderr
    if "dataset already exists" in err:
        return StateConflict(f"ZFS snapshot {', '.join(names)} already exists",
                             hint="another set with the same name was taken in the same "
                                  "millisecond; retry")
    if "does not exist" in err:
        return VolumeError(f"ZFS dataset of {', '.join(names)} does not exist: {error_text(e)}")
    if "too many arguments" in err:
        return ServiceError("this zfs takes one snapshot per call",
                            hint="report this: capability detection should have seen it")
    return ServiceError(f"zfs snapshot {', '.join(names)} failed: {error_text(e)}")
