"""The drill's proof and its loss window, measured from the redo logs themselves.

After a failover the standby's redolog volume holds the log up to some position. `reach` finds
it: the newest log on the volume (by the sequence in its header) and the end of its last
complete record, with the commit time of the last transaction the standby has. The proof then
compares the standby with the **primary's own log cut there** (`cut_copy`: the primary's logs
with a lower sequence whole, the one of the reached sequence truncated at the reached offset)
rather than with what the standby pulled, so a standby that pulled something the primary never
wrote, or that lacks something the primary wrote before that position, is caught:

- `committed_ops_lost`: ops committed in the primary's cut log that the standby's log lacks
  (must be 0);
- `ops_after_cut`: ops the primary committed after the reached position (the loss the guide
  accepts, the RPO in ops);
- `rpo_s`: kill time minus the commit time of the last transaction the standby has;
- a **gap**: the standby reached less than what the primary had confirmed at the target (a
  redolog snapshot or a streamed segment missing there) — the drill fails and says so.

Invariant: nothing here trusts the drill's own bookkeeping of what it pulled; every figure is
read from the log bytes on the two volumes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from standby.errors import NotFound
from standby.redolog.files import ARCHIVE_DIR, CURRENT, archive_name
from standby.redolog.ops import StoreIncomingBlob
from standby.redolog.position import Reach, logs_by_seq
from standby.replay.player import Player, Selection, select_files
from standby.transfer import stream_keys
from standby.transfer._base import Target
from standby.transfer.objects import ObjectTarget

OpKey = tuple[int, int, int, int, int]  # txn time, txn counter, mailbox, change id, opcode


def cut_copy(primary_log_dir: Path, at: Reach, into: Path) -> Path:
    """A redolog folder `into` holding the primary's log up to `at`: the logs of lower
    sequences in `archive/`, the one of `at.seq` as `redo.log`, truncated at `at.offset`."""
    (into / ARCHIVE_DIR).mkdir(parents=True, exist_ok=True)
    for s, path in logs_by_seq(primary_log_dir):
        if s < at.seq:
            shutil.copyfile(path, into / ARCHIVE_DIR / archive_name(0, s))
        elif s == at.seq:
            with open(path, "rb") as src, open(into / CURRENT, "wb") as dst:
                left = at.offset
                while left > 0:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    dst.write(chunk)
                    left -= len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
    return into


def committed(log_dir: Path) -> Iterator[OpKey]:
    """The ops committed in the logs of `log_dir` (blob staging left out: it is not an op on
    a mailbox), each by its transaction, mailbox, change number and opcode."""
    logs, _ = select_files(log_dir, Selection())
    for rec, _path in Player(Selection()).play(logs):
        if not isinstance(rec.op, StoreIncomingBlob):
            yield (rec.txn_time, rec.txn_counter, rec.mailbox_id, rec.change_id, rec.opcode)


@dataclass(frozen=True)
class Loss:
    committed_ops_lost: int
    ops_after_cut: int
    primary_ops: int
    standby_ops: int


def loss(primary_log_dir: Path, primary_cut_dir: Path, standby_log_dir: Path) -> Loss:
    cut = set(committed(primary_cut_dir))
    mine = set(committed(standby_log_dir))
    everything = sum(1 for _ in committed(primary_log_dir))
    return Loss(committed_ops_lost=len(cut - mine), ops_after_cut=max(0, everything - len(cut)),
                primary_ops=everything, standby_ops=len(mine))


def gap(reached: Reach, confirmed: tuple[int, int] | None, what: str) -> str | None:
    """Why the standby reached less than the target had confirmed (`what` names it), or None."""
    if confirmed is None or reached.position >= confirmed:
        return None
    return (f"gap: the standby reached {reached}, and the primary had {what} at the target up "
            f"to seq {confirmed[0]} offset {confirmed[1]}: something shipped is missing there")


def divergent(standby: dict[int, str], reference: dict[int, str]) -> list[int]:
    """Mailboxes whose digests differ, or that only one side has."""
    return sorted(m for m in set(standby) | set(reference)
                  if standby.get(m) != reference.get(m))


def remove_newest_redolog(target: Target) -> str:
    """Sabotage: remove the newest redolog snapshot (its data, record and manifest) from the
    target, as a lost object would; say what was removed."""
    cat = target.catalog
    cat.listing(fresh=True)
    newest = max((m for m in cat.manifests() if m.snapshot("redolog") is not None),
                 key=lambda m: (m.taken_at_ms, m.id), default=None)
    if newest is None or newest.kind != "redolog":
        raise NotFound(f"the newest redolog-volume snapshot at {target.url} is "
                       f"{'none' if newest is None else 'a set'}: nothing to sabotage",
                       hint="take redolog snapshots after the last set")
    r = cat.record("redolog", newest.id)
    target.discard(r)
    cat.remove_record(r)
    cat.remove(newest)
    return f"removed redolog snapshot {newest.id} from {target.url}"


def remove_a_segment(target: Target) -> str:
    """Sabotage: remove one streamed segment — the one before the newest of the newest log, so
    that later ones are still there — as a lost object would; say which."""
    if not isinstance(target, ObjectTarget):
        raise NotFound(f"{target.url} holds no streamed segments")
    listing = stream_keys.parse(target.store.list(stream_keys.PREFIX))
    for seq in reversed(listing.seqs):
        segs = stream_keys.chain(listing.segments.get(seq, []))
        if len(segs) >= 2:
            target.store.delete(segs[-2].key)
            return f"removed segment {segs[-2].key} from {target.url}"
    raise NotFound(f"{target.url} holds no log with two segments: nothing to sabotage")
