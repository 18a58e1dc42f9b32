"""Redo logs in backups: saving the server's archived logs, and finding the logs a restore replays.

Saving (incremental and auto-grouped sessions): an archived log at least
`backup_archived_redolog_keep_time` old is moved into the target (a rename on the same file
system, else copied, fsynced, renamed, and then removed from the archive); a younger one is
copied and left in the archive, and removed by a later session once it is old enough and its
copy is in the target. A log's age is counted from its rollover time (its name's GMT stamp).
`plan_save` is pure; `save` carries the plan out.

Finding (restores): every log the target holds (`redologs/` and each session's `redologs/`)
and, unless `-br`, the server's archive and its current `redo.log`, one file per sequence, in
sequence order. `chain` picks those a restore from a backup taken at sequence S needs — from
S - 1 (a shared delivery's blob may sit in the log before) to the end or a `-restoreToRedoSeq`
/ `-restoreToIncrLabel` cut — and refuses a gap: a missing sequence would silently lose changes.

Rewriting (`--skipDeletes`, a deleted account brought back, a restore into another mailbox):
`rewrite` writes the selected committed ops, changed as asked, into one new log that the replay
engine then replays as it is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from standby import fsutil, timefmt
from standby.errors import NotFound, UsageError
from standby.redolog import files
from standby.redolog import header as fileheader
from standby.redolog.header import FileHeader
from standby.redolog.ops import (
    CommitTxn,
    DeleteItem,
    DeleteMailbox,
    EmptyFolder,
    MoveItem,
    StoreIncomingBlob,
)
from standby.redolog.record import Op, Record
from standby.replay.player import LogFile, Player, Selection


def current_seq(redolog_dir: Path) -> int | None:
    """The sequence of the server's current `redo.log` (from its header), None if absent."""
    p = redolog_dir / files.CURRENT
    try:
        with open(p, "rb") as f:
            raw = f.read(fileheader.HEADER_SIZE)
    except FileNotFoundError:
        return None
    if len(raw) < fileheader.HEADER_SIZE:
        return None
    return fileheader.decode(raw, path=str(p)).sequence


@dataclass(frozen=True)
class SaveStep:
    name: str
    seq: int
    action: str  # move | copy | drop (the target has it; the archive's copy is old enough)


def plan_save(archived: Sequence[files.LogFile], in_target: dict[str, int], *, now_ms: int,
              keep_ms: int) -> list[SaveStep]:
    """What a session does with each archived log (`in_target`: name -> size already there)."""
    steps = []
    for lf in archived:
        try:
            age = now_ms - timefmt.parse_gmt_stamp(lf.stamp)
        except UsageError:
            age = keep_ms  # no stamp in the name: treat it as old enough
        old = age >= keep_ms
        have = in_target.get(lf.path.name)
        if have is not None and have == lf.path.stat().st_size:
            if old:
                steps.append(SaveStep(lf.path.name, lf.seq, "drop"))
            continue
        steps.append(SaveStep(lf.path.name, lf.seq, "move" if old else "copy"))
    return steps


def _copy(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)


def save(redolog_dir: Path, dest: Path, steps: Sequence[SaveStep]) -> list[SaveStep]:
    """Carry out `plan_save`'s steps; returns those that put a log into `dest`."""
    archive = redolog_dir / files.ARCHIVE_DIR
    dest.mkdir(parents=True, exist_ok=True)
    same_fs = archive.is_dir() and os.stat(archive).st_dev == os.stat(dest).st_dev
    saved = []
    for st in steps:
        src = archive / st.name
        if st.action == "drop":
            src.unlink(missing_ok=True)
            continue
        if st.action == "move" and same_fs:
            os.rename(src, dest / st.name)
        else:
            _copy(src, dest / st.name)
            if st.action == "move":
                src.unlink()
        saved.append(st)
    if saved:
        fsutil.fsync_dir(dest)
    if any(st.action != "copy" for st in steps):
        fsutil.fsync_dir(archive)
    return saved


def in_dir(d: Path) -> dict[str, int]:
    return {lf.path.name: lf.path.stat().st_size for lf in files.list_archive(d)}


# ---------------------------------------------------------------------------------------------
# Restores


def gather(target_dirs: Iterable[Path], redolog_dir: Path | None) -> dict[int, Path]:
    """One log per sequence from the target's folders, then (if given) the server's archive
    and current log; the first place that has a sequence wins."""
    found: dict[int, Path] = {}
    dirs = list(target_dirs)
    if redolog_dir is not None:
        dirs.append(redolog_dir / files.ARCHIVE_DIR)
    for d in dirs:
        for lf in files.list_archive(d):
            found.setdefault(lf.seq, lf.path)
    if redolog_dir is not None:
        seq = current_seq(redolog_dir)
        if seq is not None:
            found.setdefault(seq, redolog_dir / files.CURRENT)
    return found


def chain(found: dict[int, Path], *, from_seq: int, to_seq: int | None = None) -> list[int]:
    """The sequences a restore replays: from `from_seq - 1` (or the first there is) up to
    `to_seq` (inclusive) or the last; NotFound if one in between is missing."""
    have = sorted(s for s in found if s >= from_seq - 1 and (to_seq is None or s <= to_seq))
    if not have:
        return []
    if have[0] > from_seq:
        raise NotFound(f"the redo log with sequence {from_seq} is not in the backup target or "
                       "the server's archive; the restore cannot replay what followed the "
                       "backup", hint="restore to the full backup only with -rf, or copy the "
                       "missing logs into <target>/redologs")
    missing = sorted(set(range(have[0], have[-1] + 1)) - set(have))
    if missing:
        raise NotFound(f"redo log sequence {missing[0]} is missing between {have[0]} and "
                       f"{have[-1]}: replaying past it would lose changes",
                       hint="copy the missing logs into <target>/redologs, or restore to an "
                       f"earlier point with -restoreToRedoSeq {missing[0] - 1}")
    return have


def log_files(found: dict[int, Path], seqs: Sequence[int]) -> list[LogFile]:
    out = []
    for s in seqs:
        p = found[s]
        with open(p, "rb") as f:
            h = fileheader.decode(f.read(fileheader.HEADER_SIZE), path=str(p))
        out.append(LogFile(p, s, h))
    return out


# ---------------------------------------------------------------------------------------------
# A restore that changes what it replays


TRASH = 3


def is_delete_op(op: Op) -> bool:
    """Zimbra's `isDeleteOp` (what `--skipDeletes` leaves out), for the ops the store logs."""
    return isinstance(op, DeleteItem | DeleteMailbox | EmptyFolder) or (
        isinstance(op, MoveItem) and op.dest_id == TRASH)


def rewrite(logs: Sequence[LogFile], sel: Selection, out: Path, *, server_id: str,
            remap: dict[int, int], drop: Callable[[Record], bool], now_ms: int) -> LogFile:
    """Write the committed ops `sel` picks from `logs` into one new log at `out`, each followed
    by its CommitTxn: ops `drop` refuses are left out, mailbox ids are mapped through `remap`
    (a restore into another mailbox). The new log replays, with no selection, exactly those ops."""
    first = last = 0
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(bytes(fileheader.HEADER_SIZE))
        for rec, _path in Player(sel).play(list(logs)):
            op = rec.op
            if drop(rec):
                continue
            if isinstance(op, StoreIncomingBlob):
                op = StoreIncomingBlob(tuple(remap.get(m, m) for m in op.mailbox_ids or ()),
                                       op.digest, op.path, op.msg_size, op.data)
            m = remap.get(rec.mailbox_id, rec.mailbox_id)
            new = Record(op, rec.tstamp, rec.txn_time, rec.txn_counter, m, rec.change_id,
                         rec.change_constraint, rec.version)
            f.write(new.encode())
            f.write(Record(CommitTxn(op.OPCODE), rec.tstamp, rec.txn_time, rec.txn_counter,
                           m).encode())
            first = rec.tstamp if not first else min(first, rec.tstamp)
            last = max(last, rec.tstamp)
        size = f.tell()
        hdr = FileHeader(sequence=0, server_id=server_id, create_time=now_ms, open=False,
                         file_size=size, first_op_tstamp=first, last_op_tstamp=last)
        f.seek(0)
        f.write(hdr.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return LogFile(out, 0, hdr)
