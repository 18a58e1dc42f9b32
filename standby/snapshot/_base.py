"""The one interface every snapshot backend implements, and the values they exchange.

A backend snapshots *volumes* (one of db, blob, index, redolog, with the path it is mounted at
and the backend's own name for it: a ZFS dataset, a btrfs subvolume, an LVM `vg/lv`, an EBS
volume id) and answers with `Snapshot` values. It knows nothing of sets, manifests, the store or
the clock: the set executor (`execute.py`) decides the order, the stagger, the quiesce and the
redo positions, and measures the times around each `create` call.

Invariants a backend keeps (the contract tests in tests/test_snapshot_contract.py check them on
every backend that can run here):

- `create` either returns one `Snapshot` per volume asked for, or raises a `StandbyError` having
  left nothing behind (it destroys what it made of a failed call itself);
- several volumes in one `create` call are taken in one instant; `atomic_groups` says which
  volumes can share a call and raises `UsageError` naming the reason when they cannot;
- `destroy` is idempotent: a snapshot that is already gone is not an error;
- errors are `StandbyError`s with a message a person can act on, never a raw `ClientError`,
  `CalledProcessError` or `OSError`.

Backends whose snapshots can be sent as a byte stream (zfs, btrfs) also implement the optional
`StreamingBackend`: they build the send and receive commands and answer what a receiving side
holds, so that shipping and pull only compose them (`_process.pipe`, `_process.over_ssh`) and
never build a `zfs` or `btrfs` argv themselves. Its invariants (tests/test_snapshot_streams*.py):

- a snapshot received from `send(s)` is listed by `received(target)` with
  `stream_id == stream_id(s)`: that is how a sender proves what the receiver holds;
- an incremental `send(s, parent)` is received only where `parent`'s copy is;
- a capability the installed tool lacks (resume on zfs-fuse and btrfs) is reported as absent
  and asking for it raises `ServiceError` naming what is missing, never a half-working command.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from standby._process import Command, Remote
from standby.errors import CommandFailed, ServiceError, StandbyError


@dataclass(frozen=True)
class Volume:
    """One of the store's volumes as a backend sees it."""

    name: str  # db | blob | index | redolog
    path: Path  # where it is mounted / lives
    dataset: str | None = None  # ZFS dataset, btrfs subvolume, LVM vg/lv, EBS volume id


@dataclass(frozen=True)
class Snapshot:
    """A snapshot a backend made: enough to find it again, destroy it, and prove its identity."""

    volume: str
    backend: str
    name: str  # the snapshot's own name (after `@` for ZFS; the directory name for btrfs, dir)
    ref: str  # the backend's full address: pool/ds@name, a path, vg/lv, snap-0123...
    identity: Mapping[str, Any] = field(default_factory=dict)  # guid/createtxg, uuid, id...

    def as_dict(self) -> dict[str, Any]:
        return {"volume": self.volume, "backend": self.backend, "name": self.name,
                "ref": self.ref, "identity": dict(self.identity)}


@runtime_checkable
class SnapshotBackend(Protocol):
    """Take, identify and destroy snapshots of volumes on one storage technology."""

    #: the backend's name as written in `volumes.<name>.backend`
    name: str
    #: True when `create` copies data rather than taking an instant snapshot (the `dir`
    #: backend): the executor then freezes the store for the duration of each call.
    copies: bool

    def check(self, volume: Volume) -> None:
        """Raise `VolumeError` unless this backend can snapshot `volume` as configured: the
        dataset exists, the path is where it is mounted, the file system is the right kind.
        `CommandNotFound` if the backend's program is missing. No side effects."""
        ...

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        """Partition `volumes` into groups that one `create` call takes in one instant (one ZFS
        transaction group per pool, one EBS `CreateSnapshots` per instance). Raise `UsageError`
        saying why when this backend cannot take several volumes at once."""
        ...

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        """What `create(volumes, name)` would run (commands or API calls), for `--dry-run`."""
        ...

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        """Snapshot `volumes` (in one instant when more than one) under `name`; `labels`
        (server id, set id, ...) go into tags where the backend has them. All or nothing."""
        ...

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        """Wait until `snapshots` are durable/complete where that takes time (EBS) and return
        them with their final identity. Called once per set, after the last `create`."""
        ...

    def exists(self, snapshot: Snapshot) -> bool:
        """True if the snapshot is still there."""
        ...

    def destroy(self, snapshot: Snapshot) -> None:
        """Remove the snapshot; a snapshot already gone is not an error."""
        ...


# --------------------------------------------------------------------------------------------
# Streams (optional: zfs, btrfs)


@dataclass(frozen=True)
class StreamTarget:
    """Where streams are received: for zfs the dataset a volume's snapshots land in
    (`pool/standby/db`, created by the first full receive; its parent must exist), for btrfs the
    directory, a subvolume, the received snapshots appear in (`/standby/db`, each received
    snapshot at `<location>/<snapshot name>`). On this host, or on `remote` over ssh."""

    location: str
    remote: Remote | None = None

    def __str__(self) -> str:
        return f"{self.remote}:{self.location}" if self.remote else self.location


@dataclass(frozen=True)
class Received:
    """A complete snapshot at a receiving side, oldest first in `received()` answers."""

    name: str  # as on the sending side (zfs keeps the name after `@`, btrfs the directory name)
    ref: str  # its address there: pool/standby/db@name, /standby/db/name
    stream_id: str  # equal to `stream_id()` of the snapshot it was received from
    identity: Mapping[str, Any] = field(default_factory=dict)  # its own guid, uuid...

    def as_snapshot(self, volume: str, backend: str) -> Snapshot:
        """As a `Snapshot`, to send it on from there (pull from a target)."""
        return Snapshot(volume=volume, backend=backend, name=self.name, ref=self.ref,
                        identity=dict(self.identity))


def newest_common(snapshots: Sequence[Snapshot], received: Sequence[Received],
                  stream_id: Callable[[Snapshot], str]) -> Snapshot | None:
    """The newest of `snapshots` (oldest first) whose copy the receiving side holds: the parent
    an incremental send to it can use. None when it holds none of them (a full send is needed).
    zfs also needs that copy to be the newest snapshot there (`stream_error` says so if not)."""
    there = {r.stream_id for r in received}
    for s in reversed(snapshots):
        if stream_id(s) in there:
            return s
    return None


# (side: "send" or "receive", regular expression searched in that side's error output, error
# class, message with {target}, hint)
ErrorTable = Sequence[tuple[str, str, type[StandbyError], str, str]]


def error_text(e: CommandFailed) -> str:
    """What a failed command said about why, on one line: its error output from the first line
    that reports an error (zfs wraps one message over two lines; btrfs prints progress lines
    before it), else its last line."""
    lines = [ln.strip() for ln in e.stderr.strip().splitlines() if ln.strip()]
    if not lines:
        return f"exit code {e.returncode}"
    first = next((i for i, ln in enumerate(lines) if _REPORTS_ERROR.search(ln)), len(lines) - 1)
    return " ".join(lines[first:])


_REPORTS_ERROR = re.compile(r"\b(?:cannot|error|failed|invalid)\b", re.IGNORECASE)


def host_name(remote: Remote | None) -> str:
    return str(remote) if remote else "this host"


def translate_stream_error(e: CommandFailed, target: StreamTarget, table: ErrorTable,
                           what: str) -> StandbyError:
    """The first row of `table` for the side that failed (the sender when its argv, or the
    remote command ssh runs, has the word `send`) whose pattern its error output matches, as
    that row's error; else a `ServiceError` saying that the `what` stream to `target` failed."""
    side = "send" if any("send" in a.split() for a in e.argv) else "receive"
    said = " ".join(e.stderr.split())  # zfs wraps a message over two lines
    for row_side, pattern, kind, message, hint in table:
        if row_side == side and re.search(pattern, said):
            return kind(message.format(target=target) + f": {error_text(e)}", hint=hint)
    return ServiceError(f"{what} stream to {target} failed: {error_text(e)}")


@runtime_checkable
class StreamingBackend(Protocol):
    """Send snapshots as byte streams and receive them elsewhere (optional beside
    `SnapshotBackend`). Builders return `Command`s and run nothing, apart from a one-off look at
    the installed tool's options (cached per host); the queries of a receiving side run through
    the backend's injected runner, over ssh when the target is remote."""

    name: str

    def send(self, snapshot: Snapshot, parent: Snapshot | None = None, *,
             remote: Remote | None = None) -> Command:
        """The command that writes `snapshot`'s stream to stdout: full, or incremental from
        `parent` (an earlier snapshot of the same volume whose copy the receiver holds). On
        `remote` (pull from a target) the command runs there over ssh."""
        ...

    def receive(self, target: StreamTarget, *, resumable: bool = False,
                rollback: bool = False) -> Command:
        """The command that reads a stream on stdin and makes the snapshot at `target` (over
        ssh when `target.remote`). `resumable` keeps an interrupted receive's state for
        `resume_send` (zfs `recv -s`); `ServiceError` where the receiving tool cannot.
        `rollback` first discards changes made at the target since its newest snapshot (zfs
        `recv -F`; a mounted standby dataset changes as soon as a file is read with atime on);
        btrfs received snapshots are read-only and need none, so it is ignored there."""
        ...

    def after_receive(self, target: StreamTarget) -> None:
        """Call after each successful receive at `target`, before reading its files: zfs-fuse
        keeps serving cached file data of the mounted dataset from before an incremental
        receive until it is remounted, so zfs remounts a mounted target (harmless elsewhere;
        `StateConflict` if something holds files open there); btrfs has nothing to do."""
        ...

    def stream_id(self, snapshot: Snapshot) -> str:
        """The identity a stream of `snapshot` carries to the receiver (zfs guid; btrfs uuid, or
        the received uuid of a snapshot that was itself received). `FormatError` if the
        snapshot's identity lacks it."""
        ...

    def received(self, target: StreamTarget) -> list[Received]:
        """The complete snapshots at `target`, oldest first; empty when it does not exist yet.
        Partial receives are not listed."""
        ...

    def prepare_receive(self, target: StreamTarget) -> None:
        """Make `target` able to take a first full receive (zfs: its parent dataset exists;
        btrfs: the directory exists and is a subvolume). Idempotent; `VolumeError` if the place
        is there but of the wrong kind."""
        ...

    def estimate(self, snapshot: Snapshot, parent: Snapshot | None = None) -> int | None:
        """The stream's size in bytes before sending it (zfs `send -nP`, or a full snapshot's
        referenced bytes on a zfs without it); None when the tool cannot tell without sending."""
        ...

    def can_resume(self, target: StreamTarget, *, sender: Remote | None = None) -> bool:
        """True when an interrupted stream from `sender` (None: this host) to `target` can be
        resumed: the sending tool can send from a token and the receiving one can keep a
        partial receive. Detected from the installed tools, never assumed."""
        ...

    def resume_token(self, target: StreamTarget) -> str | None:
        """The token of an interrupted resumable receive at `target` (zfs
        `receive_resume_token`), or None when there is none, which is always the case where
        `can_resume` is False: those tools discard or leave behind (btrfs) a partial receive,
        and `abort_receive` clears it."""
        ...

    def resume_send(self, token: str, *, remote: Remote | None = None) -> Command:
        """The command that sends the rest of an interrupted stream (zfs `send -t TOKEN`), into
        `receive(target, resumable=True)`. `ServiceError` where the sending tool cannot."""
        ...

    def destroy_received(self, target: StreamTarget, snapshot: Received) -> None:
        """Remove a received snapshot from `target` (retention at the target); one already
        gone is not an error. `UsageError` if `snapshot` is not one of `target`'s."""
        ...

    def stream_error(self, error: CommandFailed, target: StreamTarget) -> StandbyError:
        """What a failed send or receive (as `_process.pipe` raises it) means, as an error a
        person can act on: the incremental's parent missing at `target` (`NotFound`, offering a
        full send), the target changed or already holding the snapshot (`StateConflict`), the
        snapshot gone at the sender (`NotFound`); anything else a `ServiceError`."""
        ...

    def abort_receive(self, target: StreamTarget, snapshot: Snapshot) -> list[str]:
        """Remove what an interrupted receive of `snapshot` left at `target`, so that the next
        send starts cleanly: zfs `recv -A` for a resumable receive; on a zfs without resume,
        wait until zfs has discarded the half-received dataset itself (`StateConflict` if it
        stays); btrfs deletes the half-written, writable subvolume. Idempotent; a complete
        received snapshot is never touched. Returns what it removed."""
        ...
