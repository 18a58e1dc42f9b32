"""The redo log writer: group commit and rollover, as Zimbra's `FileLogWriter`/`RedoLogManager`.

Group commit. A synchronous record (a change record, an AbortTxn) is appended and the caller waits
until a background thread has fsynced past it; the thread sleeps `fsync_interval_ms` between
fsyncs, so concurrent callers share one fsync. Asynchronous records (CommitTxn) are only written.
An interval of 0 fsyncs inline for every synchronous record. Every record is appended with a single
`write()`, so a killed process leaves whole records or none in the page cache.

Rollover, checked after every record: due when the file reaches the hard maximum, or the soft size
if it has grown since it was opened and is at least the minimum age. Under the write lock:
`before_rollover()` (the store flushes InnoDB), a Checkpoint listing the active transactions ends
the old file if there are any (as Zimbra's: txn 0.0, tstamp 0), which is closed (header open=0,
size, the latest op time in it); the next file is written as
`~tmp-redo-<stamp>-seq<N+1>.log` with the change records of all still-active transactions
re-logged into it; the old file is renamed into `archive/` (or deleted), and the tmp file becomes
`redo.log`.

Start-up: leftover tmp files are resolved first (if `redo.log` is missing the newest tmp file
becomes it; others get `.bak`), then `redo.log` is opened for append (created with sequence 0 if
absent) with header open=1, fsynced.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from standby import log as slog
from standby import timefmt
from standby.errors import FormatError, VolumeError
from standby.fsutil import fsync_dir
from standby.redolog import files
from standby.redolog import header as fileheader
from standby.redolog.header import HEADER_SIZE, FileHeader
from standby.redolog.ops import AbortTxn, Checkpoint, CommitTxn
from standby.redolog.record import MAILBOX_UNKNOWN, Record
from standby.settings import RedologSettings


@dataclass(frozen=True)
class WriterConfig:
    fsync_interval_ms: int = 10
    rollover_size: int = 102400 * 1024
    rollover_min_age_ms: int = 1800 * 1000
    rollover_hard_max: int = 1048576 * 1024
    delete_on_rollover: bool = False

    @classmethod
    def from_settings(cls, r: RedologSettings) -> WriterConfig:
        return cls(
            fsync_interval_ms=r.fsync_interval_ms,
            rollover_size=r.rollover_size_kb * 1024,
            rollover_min_age_ms=r.rollover_min_age_s * 1000,
            rollover_hard_max=r.rollover_hard_max_kb * 1024,
            delete_on_rollover=r.delete_on_rollover,
        )


class TxnIds:
    """Zimbra's TxnIdGenerator: time = start epoch seconds, counter from 1, reset at 2^31-1."""

    def __init__(self, start_s: int | None = None) -> None:
        self._lock = threading.Lock()
        self._time = int(time.time()) if start_s is None else start_s
        self._counter = 1

    def next(self) -> tuple[int, int]:
        with self._lock:
            if self._counter >= 0x7FFFFFFF:
                self._time = int(time.time())
                self._counter = 1
            t = (self._time, self._counter)
            self._counter += 1
            return t


@dataclass(frozen=True)
class Position:
    """Where the log stands: the current file's sequence and its size in bytes."""

    seq: int
    offset: int


class RedoLogWriter:
    def __init__(
        self,
        redolog_dir: Path,
        *,
        server_id: str,
        config: WriterConfig = WriterConfig(),
        clock: Callable[[], int] = timefmt.now_ms,
        before_rollover: Callable[[], None] | None = None,
        after_rollover: Callable[[Path | None, int], None] | None = None,
        fsync: Callable[[int], None] = os.fdatasync,
    ) -> None:
        self.dir = redolog_dir
        self.current = redolog_dir / files.CURRENT
        self.archive_dir = redolog_dir / files.ARCHIVE_DIR
        self.server_id = server_id
        self.cfg = config
        self.clock = clock
        self.before_rollover = before_rollover
        self.after_rollover = after_rollover
        self._fsync = fsync
        self._log = slog.get("standby.redolog.writer")

        self._lock = threading.RLock()
        self._cond = threading.Condition(threading.Lock())
        self._fd = -1
        self._header: FileHeader | None = None
        self._size = 0
        self._size_at_open = 0
        self._written = 0  # bytes ever appended (all files), for group commit
        self._synced = 0
        self._active: dict[tuple[int, int], bytes] = {}
        self._last_tstamp = 0  # the latest op time in the current file (its header's last op)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fsync_error: BaseException | None = None
        self.rollovers = 0

    # -- lifecycle --------------------------------------------------------------------------
    def open(self, *, truncate_to: int | None = None, last_op_tstamp: int | None = None) -> None:
        """Resolve tmp leftovers, open or create redo.log for append, mark it open.

        `last_op_tstamp` is the latest op time among the records already in redo.log (crash
        recovery knows it from its scan); without it the file's mtime stands in as an upper
        bound, so the header's last-op time written on close never understates the file.
        """
        if not self.dir.is_dir():
            raise VolumeError(f"redo log directory {self.dir} does not exist")
        self.archive_dir.mkdir(exist_ok=True)
        recover_tmp_files(self.dir)
        now = self.clock()
        if self.current.exists():
            fd = os.open(self.current, os.O_RDWR)
            hdr = fileheader.decode(os.pread(fd, HEADER_SIZE, 0), path=str(self.current))
            size = os.fstat(fd).st_size
            mtime_ms = os.fstat(fd).st_mtime_ns // 1_000_000
            if truncate_to is not None and truncate_to < size:
                os.ftruncate(fd, max(truncate_to, HEADER_SIZE))
                size = max(truncate_to, HEADER_SIZE)
            hdr = hdr.with_(open=True)
            last = hdr.last_op_tstamp
            if size > HEADER_SIZE:
                last = max(last, last_op_tstamp if last_op_tstamp is not None else mtime_ms)
            self._last_tstamp = last
        else:
            seq = next_sequence(self.archive_dir)
            fd = os.open(self.current, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            hdr = FileHeader(sequence=seq, server_id=self.server_id, create_time=now, open=True)
            size = HEADER_SIZE
            self._last_tstamp = 0
        os.pwrite(fd, hdr.encode(), 0)
        os.fsync(fd)
        fsync_dir(self.dir)
        self._fd, self._header, self._size, self._size_at_open = fd, hdr, size, size
        self._stop.clear()
        if self.cfg.fsync_interval_ms > 0:
            self._thread = threading.Thread(target=self._fsync_loop, name="redo-fsync",
                                            daemon=True)
            self._thread.start()
        self._log.info("redolog_opened", path=str(self.current), seq=hdr.sequence, size=size)

    def close(self) -> None:
        """Stop the fsync thread and close the file cleanly (header open=0)."""
        with self._lock:
            if self._fd < 0:
                return
            self._stop.set()
            self._close_file(self._fd, self._header, self._size)  # type: ignore[arg-type]
            self._fd = -1
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None
        with self._cond:
            self._synced = self._written
            self._cond.notify_all()

    def abandon(self) -> None:
        """Stop without closing cleanly (tests of crash behaviour): the header stays open=1."""
        self._stop.set()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # -- state ------------------------------------------------------------------------------
    @property
    def position(self) -> Position:
        with self._lock:
            assert self._header is not None
            return Position(self._header.sequence, self._size)

    @property
    def sequence(self) -> int:
        assert self._header is not None
        return self._header.sequence

    def active_txns(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self._active)

    def snapshot_state(self) -> tuple[Position, list[tuple[int, int]], int | None]:
        """Position, active txns and the oldest active change record's time, atomically."""
        with self._lock:
            assert self._header is not None
            from standby.redolog.record import HEAD

            oldest: int | None = None
            for raw in self._active.values():
                ts = HEAD.unpack_from(raw, 0)[4]
                oldest = ts if oldest is None else min(oldest, ts)
            return Position(self._header.sequence, self._size), list(self._active), oldest

    def adopt_active(self, records: list[tuple[tuple[int, int], bytes]]) -> None:
        """Treat change records already in redo.log as active transactions, as (txn, bytes).

        Crash recovery redoes them and logs their Commit; if a rollover comes first (the file
        is over its size), they are re-logged into the new file like any active transaction,
        so a crash during recovery still finds them in redo.log, the only file it scans.
        """
        with self._lock:
            for txn, raw in records:
                self._active[txn] = raw

    # -- logging ----------------------------------------------------------------------------
    def log(self, rec: Record, *, sync: bool) -> None:
        """Append one record; if `sync`, return only once it is on disk (group commit)."""
        data = rec.encode()
        with self._lock:
            if self._fd < 0:
                raise FormatError("redo log writer is not open")
            self._append(data, rec.tstamp)
            if rec.op.is_start_marker:
                self._active[rec.txn] = data
            elif rec.op.OPCODE in (CommitTxn.OPCODE, AbortTxn.OPCODE):
                self._active.pop(rec.txn, None)
            target = self._written
            if sync and self.cfg.fsync_interval_ms <= 0:
                self._fsync(self._fd)
                with self._cond:
                    self._synced = max(self._synced, target)
            self._maybe_rollover()
        if sync and self.cfg.fsync_interval_ms > 0:
            self._wait_synced(target)

    def log_commit(self, change: Record, *, tstamp: int | None = None) -> None:
        """CommitTxn for `change`'s transaction, written without fsync."""
        self.log(Record(CommitTxn(change.op.OPCODE), tstamp or self.clock(), change.txn_time,
                        change.txn_counter, change.mailbox_id), sync=False)

    def log_abort(self, change: Record, *, tstamp: int | None = None) -> None:
        """AbortTxn for `change`'s transaction, fsynced."""
        self.log(Record(AbortTxn(change.op.OPCODE), tstamp or self.clock(), change.txn_time,
                        change.txn_counter, change.mailbox_id), sync=True)

    def flush(self) -> None:
        """fsync everything written so far."""
        with self._lock:
            if self._fd >= 0:
                self._fsync(self._fd)
                with self._cond:
                    self._synced = self._written
                    self._cond.notify_all()

    def _append(self, data: bytes, tstamp: int) -> None:
        assert self._header is not None
        n = os.pwrite(self._fd, data, self._size)
        if n != len(data):  # a short write on a full disk: cut it off, keep the file parseable
            os.ftruncate(self._fd, self._size)
            raise VolumeError(f"redo log {self.current}: short write ({n} of {len(data)} bytes)",
                              hint="the redo log volume is probably full")
        self._size += n
        self._written += n
        if self._header.first_op_tstamp == 0:
            self._header = self._header.with_(first_op_tstamp=tstamp)
            os.pwrite(self._fd, self._header.encode(), 0)
        self._last_tstamp = max(self._last_tstamp, tstamp)

    def _wait_synced(self, target: int) -> None:
        deadline = time.monotonic() + 10.0
        with self._cond:
            while self._synced < target:
                if self._fsync_error is not None:
                    raise VolumeError(f"redo log fsync failed: {self._fsync_error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise VolumeError("redo log fsync did not complete within 10 s")
                self._cond.wait(left)

    def _fsync_loop(self) -> None:
        interval = min(max(self.cfg.fsync_interval_ms, 1), 1000) / 1000.0
        while not self._stop.is_set():
            time.sleep(interval)
            with self._cond:
                pending = self._written > self._synced
            if not pending:
                continue
            with self._lock:
                if self._fd < 0:
                    continue
                target = self._written
                fd = os.dup(self._fd)
            try:
                self._fsync(fd)
            except OSError as e:
                self._fsync_error = e
            finally:
                os.close(fd)
            with self._cond:
                self._synced = max(self._synced, target)
                self._cond.notify_all()

    # -- rollover ---------------------------------------------------------------------------
    def _maybe_rollover(self) -> None:
        assert self._header is not None
        size = self._size
        if size >= self.cfg.rollover_hard_max or (
            size >= self.cfg.rollover_size
            and size > self._size_at_open
            and self.clock() - self._header.create_time >= self.cfg.rollover_min_age_ms
        ):
            self._rollover()

    def rollover(self, *, force: bool = True) -> bool:
        """Roll over now (if the file holds any record, or unconditionally with force)."""
        with self._lock:
            if self._fd < 0:
                raise FormatError("redo log writer is not open")
            if self._size <= HEADER_SIZE and not force:
                return False
            if self._size <= HEADER_SIZE:
                return False
            self._rollover()
            return True

    def _rollover(self) -> None:
        assert self._header is not None
        if self.before_rollover:
            self.before_rollover()
        now = self.clock()
        old_seq = self._header.sequence
        if self._active:
            # Zimbra's RedoLogManager.checkpoint(): only when transactions are active; the op
            # is never start()ed, so its txn is 0.0 and its timestamp 0.
            ckpt = Record(Checkpoint(tuple(self._active)), 0, 0, 0, MAILBOX_UNKNOWN)
            self._append(ckpt.encode(), 0)
        self._close_file(self._fd, self._header, self._size)
        with self._cond:
            self._synced = self._written
            self._cond.notify_all()

        new_seq = old_seq + 1
        tmp = self.dir / files.tmp_name(now, new_seq)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        hdr = FileHeader(sequence=new_seq, server_id=self.server_id, create_time=now, open=True)
        os.pwrite(fd, hdr.encode(), 0)
        self._fd, self._header, self._size = fd, hdr, HEADER_SIZE
        self._last_tstamp = 0
        for raw in self._active.values():
            from standby.redolog.record import HEAD

            self._append(raw, HEAD.unpack_from(raw, 0)[4])
        os.fsync(fd)
        archived: Path | None = None
        if self.cfg.delete_on_rollover:
            self.current.unlink()
        else:
            archived = self.archive_dir / files.archive_name(now, old_seq)
            os.rename(self.current, archived)
            fsync_dir(self.archive_dir)
        os.rename(tmp, self.current)
        fsync_dir(self.dir)
        self._size_at_open = self._size
        with self._cond:
            self._synced = self._written
            self._cond.notify_all()
        self.rollovers += 1
        self._log.info("redolog_rollover", old_seq=old_seq, new_seq=new_seq,
                       archived=str(archived) if archived else None,
                       relogged=len(self._active))
        if self.after_rollover:
            self.after_rollover(archived, old_seq)

    def _close_file(self, fd: int, hdr: FileHeader, size: int) -> None:
        last = self._last_tstamp or hdr.first_op_tstamp
        closed = hdr.with_(open=False, file_size=size, last_op_tstamp=last)
        os.pwrite(fd, closed.encode(), 0)
        os.fsync(fd)
        os.close(fd)


def next_sequence(archive_dir: Path) -> int:
    arch = files.list_archive(archive_dir)
    return arch[-1].seq + 1 if arch else 0


def recover_tmp_files(redolog_dir: Path) -> list[str]:
    """Zimbra's RolloverManager.crashRecovery: adopt or set aside leftover tmp files."""
    actions: list[str] = []
    tmps = sorted(p for p in redolog_dir.iterdir()
                  if p.name.startswith(files.TMP_PREFIX) and p.name.endswith(".log"))
    if not tmps:
        return actions
    current = redolog_dir / files.CURRENT
    if not current.exists():
        newest = max(tmps, key=lambda p: (files.seq_of(p.name), p.name))
        os.rename(newest, current)
        actions.append(f"adopted {newest.name} as {files.CURRENT}")
        tmps.remove(newest)
    for p in tmps:
        os.rename(p, p.with_name(p.name + ".bak"))
        actions.append(f"set aside {p.name}")
    fsync_dir(redolog_dir)
    return actions
