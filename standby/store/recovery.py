"""Crash recovery at store start-up, as Zimbra's `RedoLogManager.start` / `runCrashRecovery`.

1. Leftover `~tmp-redo-*` files are adopted or set aside (the writer's `recover_tmp_files`).
2. The current `redo.log` alone is scanned; junk after the last good record is truncated.
3. Look-back: a commit whose time is at or after `max(mtime, createTime) - lookback` counts as
   uncommitted, because InnoDB runs with `innodb_flush_log_at_trx_commit=0` and may have lost it.
4. Every uncommitted op, and every op committed within the look-back window, is redone in log
   order through `effects.Effects` (each volume skips what it has already applied), and a
   CommitTxn, or an AbortTxn if it fails, is logged for it.
5. Blob files that no database row refers to are removed from the mailboxes touched, and the
   `incoming/` staging area is cleared.
6. If anything was redone the log is rolled over.

One departure: Zimbra defers IndexItem redo to a background thread and then logs AbortTxn for it;
here it is redone inline and committed, so a replay of the log gives the same index.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from standby import log as slog
from standby.redolog import files
from standby.redolog.header import HEADER_SIZE
from standby.redolog.ops import AbortTxn, CommitTxn, CreateMessage, StoreIncomingBlob
from standby.redolog.reader import Problem, scan
from standby.redolog.record import Record
from standby.redolog.writer import RedoLogWriter, recover_tmp_files
from standby.store.effects import Effects, IncomingBlobs


@dataclass
class RecoveryReport:
    tmp_actions: list[str] = field(default_factory=list)
    truncated_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    redone: int = 0
    aborted: int = 0
    incomplete: int = 0  # redone without all their content (a LINK blob nowhere to be found)
    db_applied: int = 0
    index_applied: int = 0
    blobs_written: int = 0
    garbage_removed: int = 0
    rolled_over: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["problems"] = [str(p) for p in self.problems]
        return d


@dataclass(frozen=True)
class RecoveryPlan:
    """The ops to redo, and where the good part of redo.log ends."""

    ops: list[Record]
    good_end: int
    size: int
    problems: list[Problem]
    incoming: list[Record]
    last_tstamp: int = 0  # the latest op time among the good records


def plan(redolog_dir: Path, *, lookback_ms: int) -> RecoveryPlan | None:
    """Scan the current redo.log and decide what crash recovery must redo (pure reading)."""
    current = redolog_dir / files.CURRENT
    if not current.exists():
        return None
    mtime_ms = int(os.stat(current).st_mtime * 1000)
    with scan(current) as sc:
        threshold = max(mtime_ms, sc.header.create_time) - lookback_ms
        pending: dict[tuple[int, int], Record] = {}
        recent: dict[tuple[int, int], Record] = {}
        order: dict[tuple[int, int], int] = {}
        incoming: list[Record] = []
        last_tstamp = 0
        for i, rec in enumerate(sc):
            op = rec.op
            last_tstamp = max(last_tstamp, rec.tstamp)
            if op.is_start_marker:
                pending[rec.txn] = rec
                order[rec.txn] = i
                if isinstance(op, StoreIncomingBlob):
                    incoming.append(rec)
            elif isinstance(op, CommitTxn):
                done = pending.pop(rec.txn, None)
                if done is not None and rec.tstamp >= threshold:
                    recent[rec.txn] = done
            elif isinstance(op, AbortTxn):
                pending.pop(rec.txn, None)
        todo = {**recent, **pending}
        ops = sorted(todo.values(), key=lambda r: order[r.txn])
        return RecoveryPlan(ops, sc.good_end, sc.size, list(sc.problems), incoming, last_tstamp)


def _set_aside_headerless(redolog_dir: Path) -> str | None:
    """A redo.log shorter than its 512-byte header holds no record (a crash while it was being
    created): keep it as `redo.log.headerless-<ms>` and let the writer start a new one."""
    current = redolog_dir / files.CURRENT
    try:
        size = current.stat().st_size
    except FileNotFoundError:
        return None
    if size >= HEADER_SIZE:
        return None
    aside = current.with_name(f"{files.CURRENT}.headerless-{int(time.time() * 1000)}")
    os.rename(current, aside)
    return f"set aside {files.CURRENT} of {size} bytes (shorter than a header) as {aside.name}"


def _linked_content(rec: Record, source: IncomingBlobs, blobs: Any) -> bytes | None:
    """The bytes of a LINK delivery being redone: from its StoreIncomingBlob in this log or the
    staged incoming file; failing both, the blob this very op wrote to the mailbox before the
    crash. (Its StoreIncomingBlob may be in an archived log by now and the staged file gone,
    while the database lost the commit: InnoDB flushes its log only once a second.)"""
    op = rec.op
    assert isinstance(op, CreateMessage)
    data = source.linked(op, rec.mailbox_id)
    if data is not None:
        return data
    own = blobs.path(rec.mailbox_id, op.msg_id, rec.change_id)
    if op.digest and blobs.matches(own, op.digest):
        return bytes(blobs.read(own))
    return None


def recover(redolog_dir: Path, *, writer: RedoLogWriter, effects: Effects, conn: Any,
            lookback_ms: int) -> RecoveryReport:
    """Run crash recovery and leave `writer` open for normal logging."""
    log = slog.get("standby.store.recovery")
    report = RecoveryReport()
    report.tmp_actions = recover_tmp_files(redolog_dir)
    set_aside = _set_aside_headerless(redolog_dir)
    if set_aside:
        report.tmp_actions.append(set_aside)
        log.warning("redolog_set_aside", action=set_aside)
    p = plan(redolog_dir, lookback_ms=lookback_ms)
    if p is None:
        writer.open()
        return report
    report.problems = p.problems
    for prob in p.problems:
        log.warning("redolog_problem", file=str(redolog_dir / files.CURRENT), offset=prob.offset,
                    kind=prob.kind, skipped=prob.skipped, message=prob.message)
    if p.good_end < p.size:
        report.truncated_bytes = p.size - p.good_end
        log.warning("redolog_tail_truncated", bytes=report.truncated_bytes, at=p.good_end)
    writer.open(truncate_to=p.good_end, last_op_tstamp=p.last_tstamp)
    # The ops to redo are active until their Commit: a rollover on the way re-logs them.
    with open(redolog_dir / files.CURRENT, "rb") as f:
        writer.adopt_active([(rec.txn, os.pread(f.fileno(), rec.length, rec.offset))
                             for rec in p.ops])

    source = IncomingBlobs(effects.blobs)
    for sib in p.incoming:
        op = sib.op
        assert isinstance(op, StoreIncomingBlob)
        source.remember_bytes(op)
    saved_source, effects.source = effects.source, source
    touched: set[int] = set()
    try:
        for rec in p.ops:
            if isinstance(rec.op, StoreIncomingBlob):
                writer.log_commit(rec)
                report.redone += 1
                continue
            content = None
            if isinstance(rec.op, CreateMessage) and rec.op.data is None:
                content = _linked_content(rec, source, effects.blobs)
            try:
                out = effects.apply(conn, rec, content=content)
            except pymysql.err.Error as e:
                log.error("recovery_op_failed", op=rec.op.NAME, mailbox=rec.mailbox_id,
                          change=rec.change_id, error=str(e))
                writer.log_abort(rec)
                report.aborted += 1
                continue
            if out.error:
                # Harmless when a later op being redone deletes the item (its blob went with
                # it before the crash); the digest of a replay tells.
                log.warning("recovery_op_incomplete", op=rec.op.NAME, mailbox=rec.mailbox_id,
                            change=rec.change_id, error=out.error)
                report.incomplete += 1
            touched.add(rec.mailbox_id)
            report.redone += 1
            report.db_applied += out.db == "applied"
            report.index_applied += out.index == "applied"
            report.blobs_written += out.blob == "written"
            writer.log_commit(rec)
        report.garbage_removed = effects.collect_garbage(conn, touched)
        effects.blobs.clear_incoming()
    finally:
        effects.source = saved_source
    if report.redone:
        writer.rollover(force=True)
        report.rolled_over = True
    log.info("crash_recovery_done", **report.as_dict())
    return report
