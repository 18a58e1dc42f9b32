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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


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
