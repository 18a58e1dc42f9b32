"""The fast replay engine: decode once, fold per mailbox, apply in bulk, in parallel.

The main process reads the logs (Zimbra's selection and commit semantics, `player.Player`), turns
each selected op into a compact tuple with a reference to its blob bytes instead of the bytes,
and cuts the stream into chunks of `chunk_ops`. Mailboxes are split among worker processes
(`mailbox_id % workers`); each worker brings its mailboxes' database rows, blobs and index
forward for a chunk (`worker.Worker`) while the main process decodes the next one. Per-mailbox
order is kept because a mailbox always goes to the same worker and chunks are processed in order.
Memory is bounded by the chunk size, not by the length of the log.

Blob files no row refers to any more (of items the replay deleted or replaced, or the database
had already removed) are removed at the end by each worker's garbage pass over the mailboxes it
touched, as in the naive engine.
"""

from __future__ import annotations

import gc
import operator
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from standby._process import forking
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
from standby.store.effects import APPLIED_OPS, not_applied

# What the main loop does with an op: send it, its bytes dropped (sent as None), a message's
# bytes by reference into the log, a contact's by reference (sent as b""), or count it as not
# applied (an op outside the store, `effects.applies`).
PLAIN, DROP, MESSAGE, CONTACT, OUTSIDE = range(5)
_GETTERS: dict[int, tuple[Callable[[Any], tuple[Any, ...]], int, int]] = {}


def _getter(opcode: int) -> tuple[Callable[[Any], tuple[Any, ...]], int, int]:
    """(the op's slot values as a tuple, where its `data` slot is or -1, what to do with it)."""
    g = _GETTERS.get(opcode)
    if g is None:
        cls = REGISTRY[opcode]
        slots = op_fields(cls)
        get = operator.attrgetter(*slots) if len(slots) > 1 else (
            (lambda o, s=slots[0]: (getattr(o, s),)) if slots else (lambda o: ()))
        data_at = slots.index("data") if "data" in slots else -1
        kind = (OUTSIDE if cls not in APPLIED_OPS else
                MESSAGE if issubclass(cls, CreateMessage | SaveDraft) else
                CONTACT if issubclass(cls, CreateContact | ModifyContact) else
                DROP if data_at >= 0 else PLAIN)
        g = _GETTERS[opcode] = (get, data_at, kind)
    return g


class _Pool:
    def __init__(self, cfg: WorkerConfig, n: int) -> None:
        self.conns = []
        self.procs = []
        with forking() as ctx:
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
    res = ReplayResult(engine="fast", files=[str(lf.path) for lf in logs],
                       index_mode=cfg.index_mode)
    file_index: dict[Path, int] = {lf.path: i for i, lf in enumerate(logs)}
    files = [str(lf.path) for lf in logs]
    sibs: dict[str, tuple[tuple[int, int, int], set[int]]] = {}

    def remember(rec: Record, path: Path) -> None:
        op = rec.op
        assert isinstance(op, StoreIncomingBlob)
        if op.path:
            n = len(op.data)
            ref = (file_index[path], rec.offset + rec.length - n, n)
            sibs[op.path] = (ref, set(op.mailbox_ids or ()))

    player = Player(sel, on_incoming=remember, spans=True)
    pool = _Pool(cfg, workers)
    t0 = time.perf_counter()
    pending_stats: list[ChunkStats] = []
    # As in the workers: no cyclic collection while decoding (records and tuples make no
    # cycles); it is switched back on below, however the replay ends.
    gc_was = gc.isenabled()
    gc.disable()
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

        by_code: Counter[int] = Counter()
        sib_code = StoreIncomingBlob.OPCODE
        for rec, path in player.play(logs):
            res.ops_read += 1
            op = rec.op
            code = op.OPCODE
            if code == sib_code:
                continue
            if limit is not None and n + res.ops_applied >= limit:
                break
            get, data_at, kind = _GETTERS.get(code) or _getter(code)
            if kind == OUTSIDE:
                res.not_applied[op.NAME] += 1
                if stop_on_error:
                    raise ServiceError(f"replay stopped: {not_applied(rec)}")
                continue
            vals = get(op)
            ref = None
            if kind == MESSAGE:  # a message body (CreateMessage, SaveDraft), inline or LINK
                msg = cast(CreateMessage | SaveDraft, op)
                if msg.data is not None:
                    ln = len(msg.data)
                    ref = (file_index[path], rec.offset + rec.length - ln, ln)
                else:
                    entry = sibs.get(msg.path or "")
                    if entry is not None:
                        ref = entry[0]
                        entry[1].discard(rec.mailbox_id)
                        if not entry[1]:
                            del sibs[msg.path or ""]
                vals = vals[:data_at] + (None,) + vals[data_at + 1:]
            elif kind == CONTACT:
                ln = len(cast(CreateContact, op).data)
                if ln:
                    ref = (file_index[path], rec.offset + rec.length - ln, ln)
                vals = vals[:data_at] + (b"",) + vals[data_at + 1:]
            elif kind == DROP:
                vals = vals[:data_at] + (None,) + vals[data_at + 1:]
            by_code[code] += 1
            m = rec.mailbox_id
            chunk[m % workers].setdefault(m, []).append((code, rec.change_id, rec.tstamp, vals,
                                                         ref))
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
        for code, count in by_code.items():
            res.by_op[REGISTRY[code].NAME] += count
        for i in range(workers):
            st = pool.wait(i)
            if st is not None:
                pending_stats.append(st)
        t_finish = time.perf_counter()
        for i in range(workers):
            pool.send(i, ("finish",))
        for i in range(workers):
            removed, secs, behind, tail = pool.wait(i)
            res.garbage_removed += removed
            res.behind.update(behind)
            pending_stats.append(tail)
            for phase, v in secs.items():
                res.phase_seconds[phase] += v
        res.phase_seconds["finish"] += time.perf_counter() - t_finish
    finally:
        pool.close()
        if gc_was:
            gc.enable()
    for st in pending_stats:
        res.db.update(st.db)
        res.blob.update(st.blob)
        res.index.update(st.index)
        res.errors.extend(st.errors)
        for phase, secs in st.seconds.items():
            res.phase_seconds[phase] += secs
        for phase, secs in st.cpu.items():
            res.phase_cpu[phase] += secs
        res.parsed += st.parsed
        res.documents += st.documents
        res.documents_deferred += st.deferred
        res.rows_loaded += st.rows_loaded
    res.seconds = time.perf_counter() - t0
    res.player = player.stats.as_dict()
    if res.errors:
        log.warning("replay_errors", count=len(res.errors), first=res.errors[0])
        if stop_on_error:
            raise ServiceError(f"replay finished with {len(res.errors)} errors; first: "
                               f"{res.errors[0]}")
    return res
