"""The fast replay engine: decode once, fold per mailbox, apply in bulk, in parallel.

The main process reads the logs (Zimbra's selection and commit semantics, `player.Player`), turns
each selected op into a compact tuple with a reference to its blob bytes instead of the bytes,
and cuts the stream into chunks of `chunk_ops`. Mailboxes are split among worker processes
(`mailbox_id % workers`); each worker brings its mailboxes' database rows, blobs and index
forward for a chunk (`worker.Worker`) while the main process decodes the next one. Per-mailbox
order is kept because a mailbox always goes to the same worker and chunks are processed in order.
Memory is bounded by the chunk size, not by the length of the log.

Blob deletions of items the database had already removed are made at the end by each worker's
garbage pass over the mailboxes it touched, as in the naive engine.
"""

from __future__ import annotations

import multiprocessing as mp
import operator
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from standby import log as slog
from standby.errors import ServiceError
from standby.redolog.ops import (
    CreateContact,
    CreateMessage,
    ModifyContact,
    SaveDraft,
    StoreIncomingBlob,
)
from standby.redolog.record import REGISTRY, Record, op_fields
from standby.replay import DEFAULT_CHUNK_OPS
from standby.replay.player import LogFile, Player, Selection
from standby.replay.result import ReplayResult
from standby.replay.worker import ChunkStats, OpTuple, WorkerConfig, serve
from standby.store.effects import applies, not_applied

_GETTERS: dict[int, tuple[Callable[[Any], tuple[Any, ...]], int]] = {}


def _getter(opcode: int) -> tuple[Callable[[Any], tuple[Any, ...]], int]:
    g = _GETTERS.get(opcode)
    if g is None:
        slots = op_fields(REGISTRY[opcode])
        get = operator.attrgetter(*slots) if len(slots) > 1 else (
            (lambda o, s=slots[0]: (getattr(o, s),)) if slots else (lambda o: ()))
        data_at = slots.index("data") if "data" in slots else -1
        g = _GETTERS[opcode] = (get, data_at)
    return g


class _Pool:
    def __init__(self, cfg: WorkerConfig, n: int) -> None:
        ctx = mp.get_context("fork")
        self.conns = []
        self.procs = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=serve, args=(cfg, child, os.getpid()), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.busy = [False] * n

    def send(self, i: int, msg: tuple[Any, ...]) -> None:
        try:
            self.conns[i].send(msg)
        except OSError as e:  # BrokenPipeError: the worker is gone
            raise self._died(i) from e
        self.busy[i] = True

    def wait(self, i: int) -> Any:
        if not self.busy[i]:
            return None
        try:
            kind, payload = self.conns[i].recv()
        except (EOFError, OSError) as e:  # killed (OOM killer, operator): no reply will come
            raise self._died(i) from e
        self.busy[i] = False
        if kind != "ok":
            raise ServiceError(f"replay worker {i} failed: {payload}")
        return payload

    def _died(self, i: int) -> ServiceError:
        p = self.procs[i]
        p.join(timeout=5)
        return ServiceError(f"replay worker {i} (pid {p.pid}) died with exit code {p.exitcode}",
                            hint="the volumes stay marked as being replayed; run the replay "
                            "again (it is idempotent)")

    def close(self) -> None:
        for c in self.conns:
            c.close()
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


def replay(logs: list[LogFile], sel: Selection, *, cfg: WorkerConfig, workers: int = 0,
           chunk_ops: int = DEFAULT_CHUNK_OPS, limit: int | None = None,
           stop_on_error: bool = False,
           progress: Callable[[int], None] | None = None) -> ReplayResult:
    log = slog.get("standby.replay.fast")
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    res = ReplayResult(engine="fast", files=[str(lf.path) for lf in logs])
    file_index = {str(lf.path): i for i, lf in enumerate(logs)}
    files = [str(lf.path) for lf in logs]
    sibs: dict[str, tuple[tuple[int, int, int], set[int]]] = {}

    def remember(rec: Record, path: Path) -> None:
        op = rec.op
        assert isinstance(op, StoreIncomingBlob)
        if op.path:
            n = len(op.data)
            ref = (file_index[str(path)], rec.offset + rec.length - n, n)
            sibs[op.path] = (ref, set(op.mailbox_ids or ()))

    player = Player(sel, on_incoming=remember, spans=True)
    pool = _Pool(cfg, workers)
    t0 = time.perf_counter()
    pending_stats: list[ChunkStats] = []
    try:
        chunk: list[dict[int, list[OpTuple]]] = [{} for _ in range(workers)]
        n = 0

        def dispatch() -> None:
            for i in range(workers):
                st = pool.wait(i)  # the previous chunk of this worker is done
                if st is not None:
                    pending_stats.append(st)
                if chunk[i]:
                    pool.send(i, ("chunk", files, chunk[i]))

        for rec, path in player.play(logs):
            res.ops_read += 1
            op = rec.op
            if isinstance(op, StoreIncomingBlob):
                continue
            if limit is not None and n + res.ops_applied >= limit:
                break
            if not applies(op):
                res.not_applied[op.NAME] += 1
                if stop_on_error:
                    raise ServiceError(f"replay stopped: {not_applied(rec)}")
                continue
            get, data_at = _getter(op.OPCODE)
            vals = get(op)
            ref = None
            if isinstance(op, CreateMessage | SaveDraft):  # a message body, inline or LINK
                if op.data is not None:
                    ln = len(op.data)
                    ref = (file_index[str(path)], rec.offset + rec.length - ln, ln)
                else:
                    entry = sibs.get(op.path or "")
                    if entry is not None:
                        ref = entry[0]
                        entry[1].discard(rec.mailbox_id)
                        if not entry[1]:
                            del sibs[op.path or ""]
                vals = vals[:data_at] + (None,) + vals[data_at + 1:]
            elif isinstance(op, CreateContact | ModifyContact):
                ln = len(op.data)
                if ln:
                    ref = (file_index[str(path)], rec.offset + rec.length - ln, ln)
                vals = vals[:data_at] + (b"",) + vals[data_at + 1:]
            elif data_at >= 0:
                vals = vals[:data_at] + (None,) + vals[data_at + 1:]
            res.by_op[op.NAME] += 1
            m = rec.mailbox_id
            chunk[m % workers].setdefault(m, []).append(
                (op.OPCODE, rec.change_id, rec.tstamp, vals, ref))
            n += 1
            if n >= chunk_ops:
                dispatch()
                res.ops_applied += n
                chunk = [{} for _ in range(workers)]
                n = 0
                if progress:
                    progress(res.ops_applied)
        dispatch()
        res.ops_applied += n
        for i in range(workers):
            st = pool.wait(i)
            if st is not None:
                pending_stats.append(st)
        t_finish = time.perf_counter()
        for i in range(workers):
            pool.send(i, ("finish",))
        for i in range(workers):
            removed, secs = pool.wait(i)
            res.garbage_removed += removed
            for phase, v in secs.items():
                res.phase_seconds[phase] += v
        res.phase_seconds["finish"] += time.perf_counter() - t_finish
    finally:
        pool.close()
    for st in pending_stats:
        res.db.update(st.db)
        res.blob.update(st.blob)
        res.index.update(st.index)
        res.errors.extend(st.errors)
        for phase, secs in st.seconds.items():
            res.phase_seconds[phase] += secs
        res.parsed += st.parsed
        res.documents += st.documents
        res.rows_loaded += st.rows_loaded
    res.seconds = time.perf_counter() - t0
    res.player = player.stats.as_dict()
    if res.errors:
        log.warning("replay_errors", count=len(res.errors), first=res.errors[0])
        if stop_on_error:
            raise ServiceError(f"replay finished with {len(res.errors)} errors; first: "
                               f"{res.errors[0]}")
    return res
