"""The naive replay engine: one op per transaction, statement by statement, in log order.

It applies each committed op through `store.effects.Effects`, exactly as the live store and crash
recovery do, so it is the reference the fast engine is checked against and the baseline the
benchmark compares with. Message bodies are remembered by where they are in the log (not their
bytes), for copies whose source is gone by the time the blob volume catches up.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql

from standby import log as slog
from standby.errors import ServiceError
from standby.redolog.ops import CreateMessage, SaveDraft, StoreIncomingBlob
from standby.redolog.record import Record, decode_at
from standby.replay.player import LogFile, Player, Selection
from standby.replay.result import ReplayResult
from standby.store.effects import Effects, IncomingBlobs, applies, not_applied
from standby.store.index import IndexMode


def replay(logs: list[LogFile], sel: Selection, *, conn: Any, effects: Effects,
           stop_on_error: bool = False, limit: int | None = None,
           progress: Callable[[int], None] | None = None,
           index_mode: IndexMode = "now") -> ReplayResult:
    log = slog.get("standby.replay.naive")
    res = ReplayResult(engine="naive", files=[str(lf.path) for lf in logs],
                       index_mode=index_mode)
    source = IncomingBlobs(effects.blobs)
    incoming: dict[str, tuple[Path, int, int]] = {}  # staged path -> its record in the log

    def remember(rec: Record, path: Path) -> None:
        op = rec.op
        assert isinstance(op, StoreIncomingBlob)
        source.remember_bytes(op)
        if op.path:
            incoming[op.path] = (path, rec.offset, rec.length)

    player = Player(sel, on_incoming=remember)
    saved, effects.source = effects.source, source
    touched: set[int] = set()
    t0 = time.perf_counter()
    try:
        for rec, path in player.play(logs):
            res.ops_read += 1
            if isinstance(rec.op, StoreIncomingBlob):
                continue
            if isinstance(rec.op, CreateMessage | SaveDraft):
                at = (path, rec.offset, rec.length) if rec.op.data is not None else \
                    incoming.get(rec.op.path or "")
                if at is not None:
                    source.remember_body(rec.mailbox_id, rec.op.digest,
                                         functools.partial(_record_data, *at))
            if limit is not None and res.ops_applied >= limit:
                break
            if not applies(rec.op):
                res.not_applied[rec.op.NAME] += 1
                if stop_on_error:
                    raise ServiceError(f"replay stopped: {not_applied(rec)}")
                continue
            try:
                out = effects.apply(conn, rec, index_mode=index_mode)
            except pymysql.err.Error as e:
                msg = f"{rec.op.NAME} mailbox {rec.mailbox_id} change {rec.change_id}: {e}"
                res.errors.append(msg)
                log.warning("replay_op_failed", error=msg)
                conn.rollback()
                res.tally(rec.op.NAME, "error", "none", "none")  # as the fast engine counts it
                if stop_on_error:
                    raise ServiceError(f"replay stopped on error: {msg}") from e
                continue
            if out.error:
                res.errors.append(out.error)
                if stop_on_error:
                    raise ServiceError(f"replay stopped on error: {out.error}")
            touched.add(rec.mailbox_id)
            res.tally(rec.op.NAME, out.db, out.blob, out.index)
            if progress and res.ops_applied % 1000 == 0:
                progress(res.ops_applied)
        res.garbage_removed = effects.collect_garbage(conn, touched)
        res.behind = effects.index.pending_counts(touched)
    finally:
        effects.source = saved
    res.seconds = time.perf_counter() - t0
    res.player = player.stats.as_dict()
    return res


def _record_data(path: Path, offset: int, length: int) -> bytes | None:
    """The blob of the record at `offset` in a log file, read and decoded again."""
    with open(path, "rb") as f:
        f.seek(offset)
        data: bytes | None = getattr(decode_at(f.read(length), 0)[0].op, "data", None)
    return data
