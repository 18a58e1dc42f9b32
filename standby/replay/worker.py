"""A fast-engine worker process: owns a share of the mailboxes and brings their three volumes
forward, chunk by chunk.

For each mailbox of a chunk, in the order the ops committed:
1. database: fold the ops into net row changes (`model.MailboxModel`), rows it touches loaded
   first in bulk; the changes of all its mailboxes are written in one transaction per chunk
   (`bulk.BulkWriter`);
2. blobs: every message or contact blob the run leaves in the database is written if missing or
   wrong; blobs of items created and deleted within the chunk are never written;
3. index: the ops run against the mailbox's SQLite index in one transaction, gated by its own
   change number; documents are inserted only for items still present at the end of the chunk,
   so a message created and deleted within it is never tokenized.
Message fields (sender, subject, text) are parsed once per message, and only when a surviving row
or document needs them. Blob bytes are read from the log files by (file, offset, length); a
copy's bytes come from its source's (in the log, or the source's blob file, `CopyFrom`). What
a purge deleted comes from the model, or from its tombstones when the database had applied it.
"""

from __future__ import annotations

import errno
import gzip
import os
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from standby.redolog.ops import (
    TYPE_MESSAGE,
    CopyItem,
    CreateContact,
    CreateMailbox,
    CreateMessage,
    DeleteMailbox,
    IndexItem,
    ModifyContact,
    PurgeOldMessages,
    SaveDraft,
)
from standby.redolog.record import REGISTRY, Op, Record, op_fields
from standby.replay.bulk import BulkWriter, DbRowSource
from standby.replay.model import (
    DIGEST,
    MailboxModel,
    blob_item_ids,
    contact_digest,
    referenced_ids,
)
from standby.store import effects as fx
from standby.store import purge
from standby.store.blobs import BlobStore, blob_relpath
from standby.store.blobs import digest as blob_digest
from standby.store.index import Doc, IndexStore, MailboxIndex
from standby.store.mime import MessageFields, message_fields

# copy_file_range errors that mean "not between these two files": fall back to read + write.
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                             errno.EBADF})

# An op as the main process sends it: (opcode, change, tstamp, slot values, blob ref or None);
# a ref is (file index, offset, length) of the message bytes inside a log file.
OpTuple = tuple[int, int, int, tuple[Any, ...], tuple[int, int, int] | None]


@dataclass(frozen=True)
class WorkerConfig:
    mariadb_socket: str
    groups: int
    blob_root: str
    index_root: str
    compress_blobs: bool
    compression_threshold: int
    retention: purge.Retention = field(default_factory=purge.Retention)  # for purges


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_op(opcode: int, values: tuple[Any, ...]) -> Op:
    cls = REGISTRY[opcode]
    op = cls.__new__(cls)
    for name, v in zip(op_fields(cls), values):
        object.__setattr__(op, name, v)
    return op


class _Blobs:
    """Message bytes by reference into the log files (one descriptor per file, `pread`).

    pread rather than mmap: mapped pages of multi-gigabyte logs would count in this process's
    resident set and make memory look unbounded."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.fds: dict[int, int] = {}
        self.lock = threading.Lock()

    def set_files(self, files: list[str]) -> None:
        self.files = files

    def fd(self, fi: int) -> int:
        fd = self.fds.get(fi)
        if fd is None:
            with self.lock:  # blob writers read from several threads
                fd = self.fds.get(fi)
                if fd is None:
                    fd = self.fds[fi] = os.open(self.files[fi], os.O_RDONLY)
        return fd

    def read(self, ref: tuple[int, int, int], msg_size: int | None = None) -> bytes:
        fi, off, n = ref
        data = os.pread(self.fd(fi), n, off)
        if len(data) != n:
            raise OSError(f"{self.files[fi]}: short read of a blob at offset {off}")
        if msg_size is not None and n != msg_size and data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)  # Zimbra logs large inline bodies gzipped
        return data

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


@dataclass
class ChunkStats:
    ops: int = 0
    db: Counter[str] = field(default_factory=Counter)
    blob: Counter[str] = field(default_factory=Counter)
    index: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    parsed: int = 0
    documents: int = 0  # full-text documents inserted
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


# Ops that change an index (every other op only raises its change number).
_INDEXED = fx.INDEXED_OPS


class _Deferred:
    """A MailboxIndex whose document inserts wait until the end of the chunk."""

    def __init__(self, idx: MailboxIndex, *, fresh: bool = False) -> None:
        self.idx = idx
        self.db = idx.db
        self.fresh = fresh  # created in this chunk: no document existed before it
        self.pending: dict[int, tuple[Doc | None, Any]] = {}

    def put(self, doc: Doc, lazy: Any = None) -> None:
        if not self.fresh:
            self.db.execute("DELETE FROM docs WHERE rowid = ?", (doc.item_id,))
        self.db.execute("INSERT OR REPLACE INTO items (id, type, folder_id, mod_content)"
                        " VALUES (?, ?, ?, ?)",
                        (doc.item_id, doc.type, doc.folder_id, doc.mod_content))
        self.pending[doc.item_id] = (doc, lazy)

    def remove(self, ids: Any) -> None:
        ids = list(ids)
        for i in ids:
            self.pending.pop(i, None)
        self.idx.remove(ids)

    def move(self, ids: Iterable[int], folder_id: int) -> None:
        self.idx.move(ids, folder_id)

    def put_folder(self, folder_id: int, parent_id: int) -> None:
        self.idx.put_folder(folder_id, parent_id)

    def subfolders(self, folder_id: int, exclude: frozenset[int] = frozenset()) -> list[int]:
        return self.idx.subfolders(folder_id, exclude)

    def items_in(self, folder_ids: list[int]) -> list[int]:
        return self.idx.items_in(folder_ids)

    def remove_folders(self, folder_ids: Iterable[int]) -> None:
        self.idx.remove_folders(folder_ids)

    def flush(self, fields_for: Any) -> int:
        rows = []
        for iid, (doc, lazy) in self.pending.items():
            if lazy is not None:
                f: MessageFields = fields_for(lazy)
                rows.append((iid, f.subject, f.sender, f.recipients, f.text))
            else:
                assert doc is not None
                rows.append((iid, doc.subject, doc.sender, doc.recipients, doc.body))
        if rows:
            self.db.executemany("INSERT INTO docs (rowid, subject, sender, recipients, body)"
                                " VALUES (?, ?, ?, ?, ?)", rows)
        self.pending.clear()
        return len(rows)


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        import pymysql

        self.cfg = cfg
        self.conn = pymysql.connect(unix_socket=cfg.mariadb_socket, user="root",
                                    charset="utf8mb4", local_infile=True, autocommit=False,
                                    ssl_disabled=True)  # a Unix socket: no TLS context
        self.source = DbRowSource(self.conn, cfg.groups)
        self.writer = BulkWriter(self.conn, cfg.groups)
        self.blobstore = BlobStore(Path(cfg.blob_root), compress=cfg.compress_blobs,
                                   threshold=cfg.compression_threshold)
        _raise_fd_limit()
        # Keep every index this worker opens open until the end: closing a WAL database
        # checkpoints it, which is better done once.
        self.index = IndexStore(Path(cfg.index_root), cache_size=1 << 30, cache_kb=512)
        self.effects = fx.Effects(groups=cfg.groups, blobs=self.blobstore, index=self.index,
                                  retention=cfg.retention)
        self.blobs = _Blobs()
        self.fields: dict[tuple[int, int, int], MessageFields] = {}
        self.touched: set[int] = set()
        # (mailbox, digest) -> where in the log a body with that digest is, for every body of
        # this worker's mailboxes replayed so far: a copy's bytes when its source is gone
        self.bodies: dict[tuple[int, str], tuple[tuple[int, int, int], int]] = {}
        self._kernel_copy = hasattr(os, "copy_file_range")
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="replay-io")

    # -- helpers ----------------------------------------------------------------------------
    def _op(self, code: int, vals: tuple[Any, ...], ref: tuple[int, int, int] | None) -> Op:
        op = make_op(code, vals)
        if ref is not None and isinstance(op, CreateContact | ModifyContact):
            object.__setattr__(op, "data", self.blobs.read(ref))  # contact blobs are small
        return op

    def _fields(self, ref: tuple[int, int, int] | None, msg_size: int | None,
                stats: ChunkStats) -> MessageFields:
        if ref is None:
            return message_fields(b"")
        f = self.fields.get(ref)
        if f is None:
            f = message_fields(self.blobs.read(ref, msg_size))
            self.fields[ref] = f
            stats.parsed += 1
        return f

    def process(self, files: list[str], boxes: dict[int, list[OpTuple]]) -> ChunkStats:
        stats = ChunkStats()
        tm = time.perf_counter
        t0 = tm()
        self.blobs.set_files(files)
        self.fields.clear()
        states = self.source.mailbox_states(list(boxes))
        deleted = self.source.deleted_mailboxes([m for m in boxes if m not in states])
        self.conn.commit()
        all_changes = []
        work = []
        for m in sorted(boxes):
            ops = [(self._op(code, vals, ref), change, ts, ref)
                   for code, change, ts, vals, ref in boxes[m]]
            stats.ops += len(ops)
            self.touched.add(m)
            ch, blobs_wanted, said = self._fold(m, ops, states.get(m), m in deleted, stats)
            all_changes.append(ch)
            work.append((m, ops, blobs_wanted, said))
        t1 = tm()
        stats.seconds["fold"] += t1 - t0
        # The three volumes are independent now: the database load runs in a thread (it mostly
        # waits on MariaDB), blobs in a small pool (file creation mostly waits in the kernel),
        # the index here. Threads release the GIL while they wait, so the waits overlap.
        before = self.writer.rows_loaded
        db_job = self.pool.submit(self._timed, self.writer.write, all_changes)
        blob_jobs = [self.pool.submit(self._timed, self._blobs, m, wanted)
                     for m, _ops, wanted, _p in work if wanted]
        for m, ops, _, said in work:
            self._index(m, ops, stats, said)
        stats.seconds["index"] += tm() - t1
        for job in blob_jobs:
            counts, secs = job.result()
            stats.blob.update(counts)
            stats.seconds["blobs"] += secs
        _r, secs = db_job.result()
        stats.seconds["db_write"] += secs
        t2 = tm()
        stats.blob["deleted"] += self._drop_garbage(all_changes)
        stats.seconds["blob_garbage"] += tm() - t2
        stats.rows_loaded = self.writer.rows_loaded - before
        stats.seconds["chunk"] += tm() - t0
        return stats

    @staticmethod
    def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
        t = time.perf_counter()
        out = fn(*args)
        return out, time.perf_counter() - t

    # -- database ---------------------------------------------------------------------------
    def _fold(self, m: int, ops: list[tuple[Op, int, int, Any]],
              state: tuple[int, int, str] | None, deleted: bool,
              stats: ChunkStats) -> tuple[Any, list[tuple[int, int, Any, Any, Any]],
                                          _DbSaid]:
        # Message bodies by the change number of the op that carried them (the model's
        # content keys).
        refs: dict[int, tuple[tuple[int, int, int] | None, int]] = {}
        for op, change, _t, ref in ops:
            if isinstance(op, CreateMessage | SaveDraft):
                refs[change] = (ref, op.msg_size)
                if ref is not None and op.digest:
                    self.bodies[(m, op.digest)] = (ref, op.msg_size)

        def fields_for(key: int) -> MessageFields:
            ref, size = refs.get(key, (None, 0))
            return self._fields(ref, size, stats)

        hwm, ckpt, acct = state if state else (0, 0, None)
        mm = MailboxModel(m, exists=state is not None, hwm=hwm, item_ckpt=ckpt,
                          account_id=acct, deleted_before=deleted, source=self.source,
                          fields_for=fields_for, retention=self.cfg.retention)
        if state is not None:
            ids: list[int] = []
            for op, change, _t, _r in ops:
                if change > hwm:
                    ids.extend(referenced_ids(op))
                else:  # for blobs of ops the database has already applied
                    ids.extend(blob_item_ids(op))
            mm.prefetch(ids)
        wanted: list[tuple[int, int, Any, Any, Any]] = []
        purged: dict[int, list[int]] = {}
        for op, change, ts, ref in ops:
            data_len, digest = 0, None
            if isinstance(op, CreateContact | ModifyContact):
                data_len = len(op.data)
                digest = contact_digest(op.data)
            outcome = mm.apply(op, change, ts, data_len, digest)
            stats.db[outcome] += 1
            if isinstance(op, CreateMessage | SaveDraft):
                wanted.append((op.msg_id, change, ref, op.digest, op.msg_size))
                if ref is None:
                    stats.errors.append(f"mailbox {m} message {op.msg_id}: no blob source")
            elif isinstance(op, CreateContact | ModifyContact) and op.data:
                wanted.append((op.contact_id, change, op.data, digest, None))
            elif isinstance(op, CopyItem):
                wanted.extend(self._copy_wanted(mm, op, change, refs, self.bodies))
            elif isinstance(op, PurgeOldMessages) and outcome == "skipped":
                purged[change] = self.source.tombstone_ids(m, change)
        purged.update(mm.purged)
        stats.errors.extend(mm.counts.errors)
        survivors = [w for w in wanted if mm.surviving(w[0], w[1])]
        return mm.changes(), survivors, _DbSaid(purged, mm.refused)

    @staticmethod
    def _copy_wanted(mm: MailboxModel, op: CopyItem, change: int,
                     refs: dict[int, tuple[tuple[int, int, int] | None, int]],
                     bodies: dict[tuple[int, str], tuple[tuple[int, int, int], int]]
                     ) -> list[tuple[int, int, Any, Any, Any]]:
        """The blobs of a copy: its source's bytes from the log when the source's body came in
        this chunk, else from the source's blob file (the model says which, for a copy it
        made; for one the database had made, the source's file as it was before the chunk),
        else a body with the copy's digest seen earlier in the log."""
        out: list[tuple[int, int, Any, Any, Any]] = []
        for src_id, copy_id, _uuid in op.entries:
            row = mm.rows.get(copy_id)
            if row is None or not row[DIGEST]:
                continue
            src, key, src_mc = mm.copy_source.get(copy_id, (src_id, None, None))
            ref, size = refs.get(key, (None, 0)) if key is not None else (None, 0)
            if ref is not None:
                out.append((copy_id, change, ref, row[DIGEST], size))
            else:
                out.append((copy_id, change, CopyFrom(src, src_mc if src_mc is not None
                                                      else mm.pre_blob.get(src),
                                                      bodies.get((mm.m, row[DIGEST]))),
                            row[DIGEST], None))
        return out

    # -- blobs ------------------------------------------------------------------------------
    def _blobs(self, m: int, wanted: list[tuple[int, int, Any, Any, Any]]) -> Counter[str]:
        """Write one mailbox's surviving blobs (runs in the pool; returns its counts).

        Paths are built as strings (this runs once per surviving message). A body stored
        plainly in the log is copied file to file inside the kernel (`copy_file_range`), so its
        bytes never pass through this process; gzipped bodies and compressed stores go
        through `_write_new`."""
        counts: Counter[str] = Counter()
        root = self.cfg.blob_root
        plain = not self.cfg.compress_blobs
        threshold = self.cfg.compression_threshold
        for item_id, change, src, digest, size in wanted:
            path = f"{root}/{blob_relpath(m, item_id, change)}"
            self.blobstore.ensure_dir(path.rpartition("/")[0])
            if isinstance(src, CopyFrom):
                found = fx.copy_source(self.blobstore, m, src.item_id, digest, src.mod_content)
                src = self.blobstore.read(found) if found is not None else \
                    self.blobs.read(*src.logged) if src.logged is not None else None
            if src is None:
                counts["missing-source"] += 1
                continue
            if isinstance(src, bytes):
                created = self._write_new(path, src)
            elif (plain or src[2] <= threshold) and (size is None or src[2] == size):
                created = self._copy_new(path, src)
            else:
                created = self._write_new(path, self.blobs.read(src, size))
            if not created:
                data = src if isinstance(src, bytes) else self.blobs.read(src, size)
                if self.blobstore.matches(Path(path), digest or blob_digest(data)):
                    counts["present"] += 1
                    continue
                self.blobstore.write(Path(path), data)
            counts["written"] += 1
        return counts

    def _drop_garbage(self, changes: list[Any]) -> int:
        """Remove the blob files of rows the chunk deleted or replaced, now that the database
        no longer refers to them (so no committed row ever points at a missing blob). Done
        here rather than at the end, so it overlaps other work; what is left over (blobs of
        rows the database had removed before the run) is found by the garbage pass at the
        end."""
        root, n = self.cfg.blob_root, 0
        for ch in changes:
            for item_id, mc in ch.blob_garbage:
                try:
                    os.unlink(f"{root}/{blob_relpath(ch.mailbox_id, item_id, mc)}")
                    n += 1
                except FileNotFoundError:
                    pass
        return n

    @staticmethod
    def _create(path: str, fill: Any) -> bool:
        """Create the blob at `path` and let `fill(fd)` write it; False if a file is already
        there. A blob that cannot be finished is removed (no half-written files).

        New files are written in place: an interrupted replay leaves the replay marker set,
        and the next run rewrites any blob whose content does not match its digest."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            fill(fd)
        except BaseException:
            _discard(path)
            raise
        finally:
            os.close(fd)
        return True

    def _copy_new(self, path: str, ref: tuple[int, int, int]) -> bool:
        """Create the blob from its bytes in a log file; False if a file is already there."""
        def fill(fd: int) -> None:
            if self._kernel_copy:
                try:
                    self._copy_range(fd, ref)
                    return
                except OSError as e:
                    if e.errno not in _NO_KERNEL_COPY:
                        raise
                    self._kernel_copy = False  # e.g. log and blob volumes on different file
                    os.ftruncate(fd, 0)        # systems: copy through this process instead
            _write_all(fd, self.blobs.read(ref))

        return self._create(path, fill)

    def _copy_range(self, fd: int, ref: tuple[int, int, int]) -> None:
        src = self.blobs.fd(ref[0])
        off, left = ref[1], ref[2]
        while left:
            n = os.copy_file_range(src, fd, left, off)
            if n == 0:
                raise OSError(f"{self.blobs.files[ref[0]]}: short read of a blob at offset "
                              f"{off}")
            off += n
            left -= n

    def _write_new(self, path: str, data: bytes) -> bool:
        """Create the blob from bytes in hand; False if a file is already there."""
        return self._create(path, lambda fd: _write_all(fd, self.blobstore.encode(data)))

    # -- index ------------------------------------------------------------------------------
    def _index(self, m: int, ops: list[tuple[Op, int, int, Any]], stats: ChunkStats,
               said: _DbSaid) -> None:
        creates = any(isinstance(op, CreateMailbox) for op, *_ in ops)
        with self.index.use(m, create=False) as existing:
            exists = existing is not None
        if not exists and not creates:
            stats.index["missing"] += len(ops)
            return
        dummy = ChunkStats()
        with self.index.use(m, create=True) as idx:
            assert idx is not None
            d = _Deferred(idx, fresh=not exists)
            idx.begin()
            try:
                started = exists
                hwm = idx.hwm if exists else 0
                for op, change, ts, ref in ops:
                    if not started:
                        if not isinstance(op, CreateMailbox):
                            stats.index["missing"] += 1
                            continue
                        started = True
                    if change <= hwm:
                        stats.index["skipped"] += 1
                        continue
                    if type(op) in _INDEXED:
                        self._index_op(d, Record(op, ts, 0, 0, m, change), op, ref,
                                       fx.Content(None, deleted=said.purged.get(change),
                                                  refused=change in said.refused))
                    hwm = change
                    stats.index["applied"] += 1
                docs = d.flush(lambda key: self._fields(key[0], key[1], dummy))
                idx.set_hwm(hwm)
                idx.commit()
            except BaseException:
                idx.rollback()
                raise
        stats.parsed += dummy.parsed
        stats.documents += docs

    def _index_op(self, d: _Deferred, rec: Record, op: Op, ref: Any,
                  said: fx.Content) -> None:
        """One op on the deferring index; `said` holds what the database step learnt."""
        if isinstance(op, CreateMessage):
            if ref is None:
                return
            d.put(Doc(op.msg_id, TYPE_MESSAGE, op.folder_id, rec.change_id, "", "", "", ""),
                  lazy=(ref, op.msg_size))
        elif isinstance(op, SaveDraft):
            # The items table, not a pending document: a move since the document was put
            # changed the former only.
            row = d.db.execute("SELECT type, folder_id FROM items WHERE id = ?",
                               (op.msg_id,)).fetchone()
            if ref is None or row is None or row[0] != TYPE_MESSAGE or said.refused:
                return
            d.put(Doc(op.msg_id, TYPE_MESSAGE, row[1], rec.change_id, "", "", "", ""),
                  lazy=(ref, op.msg_size))
        elif isinstance(op, CopyItem):
            fx.index_copy_item(self.effects, d, rec, op, said)
            for src_id, copy_id, _uuid in op.entries:
                src, made = d.pending.get(src_id), d.pending.get(copy_id)
                if src is not None and made is not None and src[0] is not None and made[0]:
                    # the source's document is still to be written: the copy's is the same
                    s, c = src[0], made[0]
                    d.pending[copy_id] = (Doc(copy_id, c.type, c.folder_id, c.mod_content,
                                              s.subject, s.sender, s.recipients, s.body), src[1])
        elif isinstance(op, PurgeOldMessages):
            fx.index_purge(self.effects, d, rec, op, said)
        elif isinstance(op, CreateContact | ModifyContact):
            fx.index_contact(self.effects, d, rec, op, fx.Content(None))
        elif isinstance(op, IndexItem):
            if op.item_id in d.pending:
                return  # its document is about to be written from the same bytes
            fx.index_item_from_blob(self.effects, d, rec, op, fx.Content(None))
        elif isinstance(op, DeleteMailbox):
            d.pending.clear()
            fx.index_delete_mailbox(self.effects, d, rec, op, fx.Content(None))
        else:
            effect = fx.INDEX_EFFECTS.get(type(op))
            if effect is not None:
                effect(self.effects, d, rec, op, fx.Content(None))

    # -- end --------------------------------------------------------------------------------
    def finish(self) -> tuple[int, dict[str, float]]:
        """Garbage pass and closing; returns (blobs removed, seconds per step)."""
        tm = time.perf_counter
        t0 = tm()
        self.pool.shutdown()
        removed = self.effects.collect_garbage(self.conn, self.touched)
        t1 = tm()
        self.blobs.close()
        self.index.close()
        self.conn.close()
        return removed, {"finish_garbage": t1 - t0, "finish_close": tm() - t1}


@dataclass(frozen=True)
class _DbSaid:
    """What a mailbox's fold learnt that its index needs: the ids each purge deleted, and the
    changes of ops the database refused."""

    purged: dict[int, list[int]]
    refused: set[int]


@dataclass(frozen=True)
class CopyFrom:
    """A copy's bytes from its source's blob file (`mod_content`: the revision to try first),
    else from the log (`logged`: a body with its digest, and the body's size)."""

    item_id: int
    mod_content: int | None
    logged: tuple[tuple[int, int, int], int] | None = None


def _write_all(fd: int, data: bytes) -> None:
    view, pos = memoryview(data), 0
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


def _discard(path: str) -> None:
    """Remove a blob this worker created but could not finish (no half-written files)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this worker when the main process dies (Linux), so a killed
    replay leaves no worker writing behind it."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def serve(cfg: WorkerConfig, conn: Connection, parent: int = 0) -> None:
    """Worker process main loop: ("chunk", files, boxes) -> ChunkStats; ("finish",) ->
    (blobs removed, seconds per step)."""
    if parent:
        _die_with_parent(parent)
    try:
        w = Worker(cfg)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, not swallowed
        conn.send(("error", f"worker failed to start: {e}"))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the main process is gone: nothing more will come
            return
        try:
            if msg[0] == "chunk":
                conn.send(("ok", w.process(msg[1], msg[2])))
            elif msg[0] == "finish":
                conn.send(("ok", w.finish()))
                return
        except BaseException as e:  # noqa: BLE001 - the parent raises it as a ServiceError
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
            return
