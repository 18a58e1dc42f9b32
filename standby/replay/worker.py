"""A fast-engine worker process: owns a share of the mailboxes and brings their three volumes
forward, chunk by chunk.

For each mailbox of a chunk, in the order the ops committed:
1. database: fold the ops into net row changes (`model.MailboxModel`), the rows they name read
   first for all the chunk's mailboxes at once (`bulk.PrefetchedRows`); the changes of all its mailboxes are written in one transaction per chunk
   (`bulk.BulkWriter`);
2. blobs: every message or contact blob the run leaves in the database is written if missing or
   wrong; blobs of items created and deleted within the chunk are never written. A mailbox's
   writes start once it is folded, while the rest of the chunk folds, and run on while the
   next chunk is folded; the end waits for them. Blob files no row refers to any more are
   removed only then, by the garbage pass (`finish`): on ext4 without a journal every inode
   freed in the last minute is walked past by each new file's allocation in its group, so
   removals made between a replay's creates cost each later create in that group (perf put a
   fifth of a failover benchmark's replay CPU in that walk, this and the benchmark's own
   removal of the previous store together);
3. index: the ops run against the mailbox's SQLite index in one transaction, gated by its own
   change number; documents are inserted only for items still present at the end of the chunk,
   so a message created and deleted within it is never tokenized.
Message fields (sender, subject, text) are parsed once per message, and only when a surviving row
or document needs them; with `--index defer` only the headers a row needs
(`mime.message_headers`), the text being the catch-up's work. Blob bytes are read from the log
files by (file, offset, length); a copy's bytes come from its source's (in the log, or the
source's blob file, `CopyFrom`). What a purge deleted comes from the model, or from its
tombstones when the database had applied it.
"""

from __future__ import annotations

import errno
import gc
import gzip
import os
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from standby._process import die_with_parent
from standby.redolog.ops import (
    TYPE_MESSAGE,
    CopyItem,
    CreateContact,
    CreateMailbox,
    CreateMessage,
    IndexItem,
    ModifyContact,
    PurgeOldMessages,
    SaveDraft,
)
from standby.redolog.record import REGISTRY, Op, Record, op_fields
from standby.replay.bulk import BulkWriter, DbRowSource, PrefetchedRows
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
from standby.store.index import Doc, IndexMode, IndexOverlay, IndexStore, MailboxIndex
from standby.store.mime import (
    MessageFields,
    MessageHeaders,
    RowFields,
    message_fields,
    message_headers,
)

# copy_file_range errors that mean "not between these two files": fall back to read + write.
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                             errno.EBADF})

P = TypeVar("P")

# Threads per worker creating blob files: their time is mostly spent waiting in the kernel.
BLOB_THREADS = 2

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
    index_mode: IndexMode = "now"
    retention: purge.Retention = field(default_factory=purge.Retention)  # for purges


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_op(opcode: int, values: tuple[Any, ...]) -> Op:
    """The op of class REGISTRY[opcode] whose fields (`op_fields` order) are `values`."""
    mk = _MAKERS.get(opcode)
    if mk is None:
        mk = _MAKERS[opcode] = _maker(REGISTRY[opcode])
    return mk(values)


_MAKERS: dict[int, Callable[[tuple[Any, ...]], Op]] = {}


def _maker(cls: type[Op]) -> Callable[[tuple[Any, ...]], Op]:
    """A constructor from a values tuple, as straight-line code (as `dataclasses` generates its
    methods): one slot store per field, not a loop of `setattr` calls — it runs once per op."""
    names = op_fields(cls)
    body = "".join(f"    o.{n} = v[{i}]\n" for i, n in enumerate(names))
    src = f"def make(v):\n    o = new(cls)\n{body}    return o\n"
    scope: dict[str, Any] = {"new": cls.__new__, "cls": cls}
    exec(src, scope)  # the names are the op classes' own __slots__
    made: Callable[[tuple[Any, ...]], Op] = scope["make"]
    return made


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
    deferred: int = 0  # documents left pending for the catch-up (--index defer)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # thread CPU


# Ops that change an index (every other op only raises its change number).
_INDEXED = fx.INDEXED_OPS


class _Deferred(IndexOverlay):
    """A MailboxIndex whose documents wait until the end of the chunk: then they are tokenized
    (`now`) or recorded as pending for the catch-up (`defer`), only for items still there."""

    def __init__(self, idx: MailboxIndex, *, fresh: bool = False,
                 mode: IndexMode = "now") -> None:
        super().__init__(idx)
        self.fresh = fresh  # created in this chunk: no document existed before it
        self.mode = mode
        # item id -> (document, None) or (None, its fields to be parsed)
        self.pending: dict[int, tuple[Doc | None, Callable[[], MessageFields] | None]] = {}

    def _item(self, item_id: int, type: int, folder_id: int, mod_content: int) -> None:
        if not self.fresh:
            self.idx.drop_text(item_id)
        self.db.execute("INSERT OR REPLACE INTO items (id, type, folder_id, mod_content)"
                        " VALUES (?, ?, ?, ?)", (item_id, type, folder_id, mod_content))

    def put(self, doc: Doc) -> None:
        self._item(doc.item_id, doc.type, doc.folder_id, doc.mod_content)
        self.pending[doc.item_id] = (doc, None)

    def put_message(self, item_id: int, type: int, folder_id: int, mod_content: int,
                    fields: Callable[[], MessageFields]) -> None:
        """As `MailboxIndex.put_message` (an IndexItem's re-index from its blob): with `now`
        the fields are read at once, so a blob that cannot be read changes nothing."""
        if self.mode == "now":
            f = fields()
            self.put(Doc(item_id, type, folder_id, mod_content, f.subject, f.sender,
                         f.recipients, f.text))
        else:
            self.put_lazy(item_id, type, folder_id, mod_content, fields)

    def put_lazy(self, item_id: int, type: int, folder_id: int, mod_content: int,
                 fields: Callable[[], MessageFields]) -> None:
        """A message of this chunk: parsed at the flush, and only if it is still there."""
        self._item(item_id, type, folder_id, mod_content)
        self.pending[item_id] = (None, fields)

    def defer(self, item_id: int, type: int, folder_id: int, mod_content: int,
              text: tuple[str, str, str, str] | None = None) -> None:
        """Straight into the index's `pending` (a copy of a source still pending from before
        the chunk), in either mode: the catch-up writes its document."""
        self.pending.pop(item_id, None)
        self.idx.defer(item_id, type, folder_id, mod_content, text)

    def remove(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        for i in ids:
            self.pending.pop(i, None)
        self.idx.remove(ids)

    def wipe(self) -> None:
        self.pending.clear()
        self.idx.wipe()

    def flush(self) -> int:
        """Write the chunk's documents (or pending entries); returns how many."""
        rows: list[tuple[Any, ...]] = []
        if self.mode == "defer":
            for iid, (doc, _f) in self.pending.items():
                rows.append((iid, doc.subject, doc.sender, doc.recipients, doc.body)
                            if doc is not None else (iid, None, None, None, None))
            sql = "INSERT OR REPLACE INTO pending (id, subject, sender, recipients, body)"
        else:
            for iid, (doc, fields) in self.pending.items():
                if doc is None:
                    assert fields is not None
                    f = fields()
                    rows.append((iid, f.subject, f.sender, f.recipients, f.text))
                else:
                    rows.append((iid, doc.subject, doc.sender, doc.recipients, doc.body))
            sql = "INSERT INTO docs (rowid, subject, sender, recipients, body)"
        if rows:
            self.db.executemany(sql + " VALUES (?, ?, ?, ?, ?)", rows)
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
        self.headers: dict[tuple[int, int, int], MessageHeaders] = {}
        self.touched: set[int] = set()
        # (mailbox, digest) -> where in the log a body (message or contact) with that digest
        # is, for every body of this worker's mailboxes replayed so far: a copy's bytes when its
        # source's file is gone or was never written (a version replaced within the chunk)
        self.bodies: dict[tuple[int, str], tuple[tuple[int, int, int], int]] = {}
        self._kernel_copy = hasattr(os, "copy_file_range")
        # Blob files in BLOB_THREADS threads (a file's creation mostly waits in the kernel,
        # for the journal or a folder's blocks), the database load in its own (it mostly waits
        # on MariaDB), the chunk's indexes opened in another (a few reads and the WAL's first
        # syncs), so none queues behind another.
        self.io = ThreadPoolExecutor(max_workers=BLOB_THREADS, thread_name_prefix="replay-blobs")
        self.dbio = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-db")
        self.opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-open")
        self.inflight: list[Future[tuple[Counter[str], float, float]]] = []
        self.blob_errors: list[str] = []  # appended by blob jobs, collected with them
        self.writing: dict[int, Future[tuple[Counter[str], float, float]]] = {}  # last chunk's

    # -- helpers ----------------------------------------------------------------------------
    def _op(self, code: int, vals: tuple[Any, ...], ref: tuple[int, int, int] | None) -> Op:
        op = make_op(code, vals)
        if ref is not None and isinstance(op, CreateContact | ModifyContact):
            object.__setattr__(op, "data", self.blobs.read(ref))  # contact blobs are small
        return op

    def _fields(self, ref: tuple[int, int, int] | None, msg_size: int | None,
                stats: ChunkStats) -> MessageFields:
        """A message's full fields (for its document and its row), parsed once per chunk."""
        return self._parsed(self.fields, message_fields, ref, msg_size, stats)

    def _row_fields(self, ref: tuple[int, int, int] | None, msg_size: int | None,
                    stats: ChunkStats) -> RowFields:
        """What a message's row needs. With `--index defer` no document is written, so only
        the headers are parsed (`message_headers`), never the text."""
        if self.cfg.index_mode == "now":
            return self._fields(ref, msg_size, stats)
        return self._parsed(self.headers, message_headers, ref, msg_size, stats)

    def _parsed(self, cache: dict[tuple[int, int, int], P], parse: Callable[[bytes], P],
                ref: tuple[int, int, int] | None, msg_size: int | None, stats: ChunkStats) -> P:
        if ref is None:
            return parse(b"")
        got = cache.get(ref)
        if got is None:
            got = cache[ref] = parse(self.blobs.read(ref, msg_size))
            stats.parsed += 1
        return got

    def process(self, files: list[str], boxes: dict[int, list[OpTuple]]) -> ChunkStats:
        stats = ChunkStats()
        tm, cpu = time.perf_counter, time.thread_time
        t0, c0 = tm(), cpu()
        self.blobs.set_files(files)
        self.fields.clear()
        self.headers.clear()
        existed, opening = self._open_indexes(boxes)
        states = self.source.mailbox_states(list(boxes))
        deleted = self.source.deleted_mailboxes([m for m in boxes if m not in states])
        self.conn.commit()
        built = {m: [(self._op(code, vals, ref), change, ts, ref)
                     for code, change, ts, vals, ref in boxes[m]] for m in sorted(boxes)}
        source = PrefetchedRows(self.source)
        source.load({m: self._named(ops, states[m][0]) for m, ops in built.items()
                     if m in states})
        all_changes = []
        work = []
        # A mailbox's blobs are written as soon as its fold is done, in a small pool (file
        # creation mostly waits in the kernel), while the next mailboxes fold: they depend on
        # nothing later in the chunk. A copy may read its source's blob file: one the previous
        # chunk's jobs may still be writing (its job for the mailbox goes first).
        writing: dict[int, Future[tuple[Counter[str], float, float]]] = {}
        for m, ops in built.items():
            stats.ops += len(ops)
            self.touched.add(m)
            ch, blobs_wanted, said = self._fold(m, ops, states.get(m), m in deleted, source,
                                                stats)
            all_changes.append(ch)
            work.append((m, ops, said))
            if blobs_wanted:
                writing[m] = self.io.submit(self._timed, self._blobs, m, blobs_wanted,
                                            self.writing.get(m) if _copies(blobs_wanted)
                                            else None)
        del built, source
        t1, c1 = tm(), cpu()
        stats.seconds["fold"] += t1 - t0
        stats.cpu["fold"] += c1 - c0
        # The three volumes are independent now: the database load runs in a thread (it mostly
        # waits on MariaDB), blobs in their pool, the index here. Threads release the GIL while
        # they wait, so the waits overlap. Blob writes may run on into the next chunk's fold
        # (which reads only the database): this chunk returns once its rows and index are
        # committed, after the previous chunk's blob writes.
        before = self.writer.rows_loaded
        db_job = self.dbio.submit(self._timed, self.writer.write, all_changes)
        blob_jobs = list(writing.values())
        for job in opening:
            job.result()
        for m, ops, said in work:
            self._index(m, ops, stats, existed[m], said)
        stats.seconds["index"] += tm() - t1
        stats.cpu["index"] += cpu() - c1
        _r, secs, csecs = db_job.result()
        stats.seconds["db_write"] += secs
        stats.cpu["db_write"] += csecs
        t2 = tm()
        self._collect(self.inflight, stats)
        stats.seconds["blob_wait"] += tm() - t2
        self.inflight = blob_jobs
        self.writing = writing
        stats.rows_loaded = self.writer.rows_loaded - before
        stats.seconds["chunk"] += tm() - t0
        return stats

    def _collect(self, jobs: list[Future[tuple[Counter[str], float, float]]],
                 stats: ChunkStats) -> None:
        """Wait for blob writes and add what they did to `stats`."""
        for job in jobs:
            counts, secs, csecs = job.result()
            stats.blob.update(counts)
            stats.seconds["blobs"] += secs
            stats.cpu["blobs"] += csecs
        jobs.clear()
        stats.errors.extend(self.blob_errors)
        self.blob_errors.clear()

    @staticmethod
    def _timed(fn: Any, *args: Any) -> tuple[Any, float, float]:
        """fn(*args), its wall seconds and the CPU seconds of the thread that ran it."""
        t, c = time.perf_counter(), time.thread_time()
        out = fn(*args)
        return out, time.perf_counter() - t, time.thread_time() - c

    # -- database ---------------------------------------------------------------------------
    @staticmethod
    def _named(ops: list[tuple[Op, int, int, Any]], hwm: int) -> set[int]:
        """The ids of the rows a mailbox's ops may touch (to be read before the fold)."""
        ids: set[int] = set()
        for op, change, _t, _r in ops:
            if change > hwm:
                ids.update(referenced_ids(op))
            else:  # for blobs of ops the database has already applied
                ids.update(blob_item_ids(op))
        return ids

    def _fold(self, m: int, ops: list[tuple[Op, int, int, Any]],
              state: tuple[int, int, str] | None, deleted: bool, source: PrefetchedRows,
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

        def fields_for(key: int) -> RowFields:
            ref, size = refs.get(key, (None, 0))
            return self._row_fields(ref, size, stats)

        hwm, ckpt, acct = state if state else (0, 0, None)
        mm = MailboxModel(m, exists=state is not None, hwm=hwm, item_ckpt=ckpt,
                          account_id=acct, deleted_before=deleted, source=source,
                          fields_for=fields_for, retention=self.cfg.retention)
        if state is not None:
            mm.prefetch(self._named(ops, hwm))
        wanted: list[tuple[int, int, Any, Any, Any]] = []
        purged: dict[int, list[int]] = {}
        for op, change, ts, ref in ops:
            data_len, digest = 0, None
            if isinstance(op, CreateContact | ModifyContact):
                data_len = len(op.data)
                digest = contact_digest(op.data)
                if ref is not None and digest:  # a later copy's bytes, if this version goes
                    self.bodies[(m, digest)] = (ref, data_len)
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
    def _blobs(self, m: int, wanted: list[tuple[int, int, Any, Any, Any]],
               after: Future[Any] | None = None) -> Counter[str]:
        """Write one mailbox's surviving blobs (runs in the pool; returns its counts), once
        `after` (the mailbox's previous job, submitted earlier to the same FIFO pool, so never
        queued behind this one) is done.

        Paths are built as strings (this runs once per surviving message). A body stored
        plainly in the log is copied file to file inside the kernel (`copy_file_range`), so its
        bytes never pass through this process; gzipped bodies and compressed stores go
        through `_write_new`."""
        if after is not None:
            after.result()
        counts: Counter[str] = Counter()
        root = self.cfg.blob_root
        plain = not self.cfg.compress_blobs
        threshold = self.cfg.compression_threshold
        for item_id, change, src, digest, size in wanted:
            path = f"{root}/{blob_relpath(m, item_id, change)}"
            self.blobstore.ensure_dir(path.rpartition("/")[0])
            if isinstance(src, CopyFrom):
                found = fx.copy_source(self.blobstore, m, src.item_id, digest, src.mod_content)
                copied = src.item_id
                src = self.blobstore.read(found) if found is not None else \
                    self.blobs.read(*src.logged) if src.logged is not None else None
                if src is None and digest and self.blobstore.matches(Path(path), digest):
                    counts["present"] += 1  # written by an earlier run, killed after it
                    continue
                if src is None:  # a message without its blob: as loud as a missing delivery
                    self.blob_errors.append(f"mailbox {m} copy {item_id}: no blob of item "
                                            f"{copied} with its content is left to copy")
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
    def _open_indexes(self, boxes: dict[int, list[OpTuple]]
                      ) -> tuple[dict[int, bool], list[Future[None]]]:
        """Which of the chunk's mailboxes had an index before it, and jobs opening (creating,
        for a mailbox created in the chunk) their indexes in the opener thread while the chunk
        is folded: a new SQLite database in WAL mode costs an fsync, an open a few reads, and
        the first commit to a WAL two more (`MailboxIndex.start_wal`)."""
        existed = {m: self.index.exists(m) for m in boxes}
        jobs = [self.opener.submit(self._open_index, m) for m in sorted(boxes)
                if existed[m] or any(t[0] == CreateMailbox.OPCODE for t in boxes[m])]
        return existed, jobs

    def _open_index(self, m: int) -> None:
        with self.index.use(m, create=True) as idx:
            # It stays open in the cache (never evicted) for the index phase, its WAL started.
            assert idx is not None
            idx.start_wal()

    def _index(self, m: int, ops: list[tuple[Op, int, int, Any]], stats: ChunkStats,
               exists: bool, said: _DbSaid) -> None:
        creates = any(isinstance(op, CreateMailbox) for op, *_ in ops)
        if not exists and not creates:
            stats.index["missing"] += len(ops)
            return
        dummy = ChunkStats()
        with self.index.use(m, create=True) as idx:
            assert idx is not None
            d = _Deferred(idx, fresh=not exists, mode=self.cfg.index_mode)
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
                                                  refused=change in said.refused), dummy)
                    hwm = change
                    stats.index["applied"] += 1
                docs = d.flush()
                idx.set_hwm(hwm)
                idx.commit()
            except BaseException:
                idx.rollback()
                raise
        stats.parsed += dummy.parsed
        if d.mode == "defer":
            stats.deferred += docs
        else:
            stats.documents += docs

    def _index_op(self, d: _Deferred, rec: Record, op: Op, ref: Any,
                  said: fx.Content, stats: ChunkStats) -> None:
        """One op on the deferring index; `said` holds what the database step learnt."""
        if isinstance(op, CreateMessage | SaveDraft):
            if ref is None:
                return
            if isinstance(op, SaveDraft):  # the draft's new body, in the folder it is in
                row = d.db.execute("SELECT type, folder_id FROM items WHERE id = ?",
                                   (op.msg_id,)).fetchone()
                if row is None or row[0] != TYPE_MESSAGE or said.refused:
                    return
                folder = row[1]
            else:
                folder = op.folder_id
            size = op.msg_size
            d.put_lazy(op.msg_id, TYPE_MESSAGE, folder, rec.change_id,
                       lambda: self._fields(ref, size, stats))
        elif isinstance(op, CopyItem):
            fx.index_copy_item(self.effects, d, rec, op, said)
            for src_id, copy_id, _uuid in op.entries:
                src, made = d.pending.get(src_id), d.pending.get(copy_id)
                if src is None or made is None or made[0] is None:
                    continue
                # the source's document is still to be written: the copy's is the same
                s, c = src[0], made[0]
                d.pending[copy_id] = (
                    (Doc(copy_id, c.type, c.folder_id, c.mod_content, s.subject, s.sender,
                         s.recipients, s.body), None) if s is not None else (None, src[1]))
        elif isinstance(op, PurgeOldMessages):
            fx.index_purge(self.effects, d, rec, op, said)
        elif isinstance(op, CreateContact | ModifyContact):
            fx.index_contact(self.effects, d, rec, op, fx.Content(None))
        elif isinstance(op, IndexItem):
            if op.item_id in d.pending:
                return  # its document is about to be written from the same bytes
            fx.index_item_from_blob(self.effects, d, rec, op, fx.Content(None))
        else:
            effect = fx.INDEX_EFFECTS.get(type(op))
            if effect is not None:
                effect(self.effects, d, rec, op, fx.Content(None))

    # -- end --------------------------------------------------------------------------------
    def finish(self) -> tuple[int, dict[str, float], dict[int, int], ChunkStats]:
        """Garbage pass and closing; returns (blobs removed, seconds per step, documents
        pending per mailbox this worker touched, what the last chunk's blob jobs did)."""
        tm = time.perf_counter
        t0 = tm()
        tail = ChunkStats()
        self._collect(self.inflight, tail)
        self.io.shutdown()
        self.dbio.shutdown()
        self.opener.shutdown()
        removed = self.effects.collect_garbage(self.conn, self.touched)
        behind = self.index.pending_counts(self.touched)
        t1 = tm()
        self.blobs.close()
        # Closing an index checkpoints its WAL (an fsync): two at a time.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="replay-close") as closer:
            list(closer.map(self.index.close_one, list(self.index.open_ids())))
        self.conn.close()
        return removed, {"finish_garbage": t1 - t0, "finish_close": tm() - t1}, behind, tail


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


def _copies(wanted: list[tuple[int, int, Any, Any, Any]]) -> bool:
    """Whether any of these blobs is a copy read from its source's blob file."""
    return any(isinstance(w[2], CopyFrom) for w in wanted)


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


def serve(cfg: WorkerConfig, conn: Connection, parent: int = 0) -> None:
    """Worker process main loop: ("chunk", files, boxes) -> ChunkStats; ("finish",) ->
    (blobs removed, seconds per step, documents pending per mailbox, last blob jobs' stats)."""
    if parent:
        die_with_parent(parent)
    # The cyclic collector would scan the chunk's millions of tuples and rows again and again
    # (a twentieth of a worker's time); it runs once per chunk instead. Nothing here needs it
    # sooner: a chunk's objects form no cycles that outlive it.
    gc.disable()
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
                del msg
                gc.collect()
            elif msg[0] == "finish":
                conn.send(("ok", w.finish()))
                return
        except BaseException as e:  # noqa: BLE001 - the parent raises it as a ServiceError
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
            return
