"""Landing pulled snapshots on the standby's volumes.

- `swap_in`: a staged folder (inside the volume) replaces what the volume holds, the runtime
  files that never travel (the volumes lock, a snapshot's marker) left as they are;
- `receive_chain`: a chain of zfs or btrfs streams (full first), fed by the caller (from stored
  objects, or sent from a receiving target's snapshots), received into the standby's volume:
  for zfs into the volume's dataset, continuing from its newest snapshot when that is a link of
  the chain (a dataset that would have to go back, or that holds none of them, is refused, not
  overwritten), then checked to be mounted where the volume is configured; for btrfs into `.standby-received-<volume>` beside the
  volume, whose newest snapshot's files are then copied in (reflinked: btrfs shares the blocks).

Every receive after the first rolls the dataset back first (`recv -F`): a replay or a mount
with atime on changes a standby's dataset after a pull.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from standby import _process
from standby.catalog.target import Shipment
from standby.errors import CommandFailed, StateConflict, UsageError
from standby.snapshot._base import StreamTarget, Volume
from standby.snapshot.dir import copy_tree
from standby.transfer import tarstream
from standby.transfer._base import Landing


def swap_in(staging: Path, dest: Path) -> None:
    """Replace what `dest` holds with what `staging` (a folder inside it) holds. The runtime
    files that never travel stay as they are on both sides (the volumes lock, a snapshot's
    marker)."""
    for name in os.listdir(dest):
        p = dest / name
        if p == staging or name in tarstream.ROOT_EXCLUDES:
            continue
        _remove(p)
    for name in os.listdir(staging):
        if name in tarstream.ROOT_EXCLUDES:
            _remove(staging / name)
        else:
            os.replace(staging / name, dest / name)
    staging.rmdir()
    os.utime(dest)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()



def landing_target(vol: Volume, kind: str) -> StreamTarget:
    """Where the standby's volume receives `kind` streams."""
    if kind == "zfs":
        if not vol.dataset:
            raise UsageError(f"volumes.{vol.name} needs its dataset to receive zfs streams")
        return StreamTarget(vol.dataset)
    return StreamTarget(str(vol.path.resolve().parent / f".standby-received-{vol.name}"))


def receive_chain(chain: Sequence[Shipment], landing: Landing, staging: Path,
                  feed: Callable[[int, Shipment, _process.Command], None]) -> None:
    """Receive `chain` into the standby's volume (see the module docstring); `feed(i, record,
    receiver)` runs record i's stream into the receiver command."""
    be = landing.streaming
    if be is None:
        raise UsageError(f"the standby's {landing.volume.name} volume cannot receive streams")
    kind, vol = landing.backend, landing.volume
    dest = landing_target(vol, kind)
    be.prepare_receive(dest)
    there = be.received(dest)
    have = {x.stream_id for x in there}
    start = max((i + 1 for i, r in enumerate(chain) if r.stream_id in have), default=0)
    if kind == "zfs" and there and (start == 0 or start == len(chain) or
                                    there[-1].stream_id != chain[start - 1].stream_id):
        # A dataset can only go forward from its newest snapshot: nothing here rolls it back.
        raise StateConflict(f"the standby's {vol.name} dataset {dest} cannot be brought to "
                            f"{chain[-1].manifest_id} from what it holds (its newest snapshot "
                            f"is {there[-1].name})",
                            hint=f"destroy it (`zfs destroy -r {dest.location}`) and pull again")
    for i in range(start, len(chain)):
        try:
            feed(i, chain[i], be.receive(dest, rollback=i > 0))
        except CommandFailed as e:
            raise be.stream_error(e, dest) from e
    be.after_receive(dest)  # once, before the files are read (zfs-fuse caches them)
    if kind == "btrfs":
        got = [x for x in be.received(dest) if x.stream_id == chain[-1].stream_id]
        if not got:
            raise StateConflict(f"{dest} does not hold the pulled {vol.name} snapshot")
        if staging.exists():
            shutil.rmtree(staging)
        copy_tree(Path(got[-1].ref), staging)
        swap_in(staging, vol.path)
    else:
        landing.backend_check(vol)  # the received dataset is mounted where it is configured
