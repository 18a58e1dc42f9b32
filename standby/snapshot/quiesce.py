"""Holding the store's MariaDB still while its volume is snapshotted.

Three things, on one connection, undone in reverse in every case:

1. *block commits* (`quiesce_db`): `BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT` ... `END`;
2. *make commits durable* (always): the store's MariaDB runs with
   `innodb_flush_log_at_trx_commit=0`, so a commit sits in InnoDB's log buffer for up to a
   second, and neither `FLUSH ENGINE LOGS` nor `BACKUP STAGE BLOCK_COMMIT` writes it out (both
   measured on MariaDB 10.11). Setting the variable to 1 for the duration of one
   `FLUSH ENGINE LOGS` does. Without this a crash-consistent snapshot could lack transactions
   whose CommitTxn is already in the redo log *before* the recorded position;
3. *clean* (the `dir` backend, which copies files while mariadbd runs): set
   `innodb_max_dirty_pages_pct=0` and wait (bounded) until there are no dirty pages, the whole
   log is flushed, and the state holds still for a moment. The checkpoint need not reach the
   end of the log (an idle 10.11 server keeps a small checkpoint age for good): crash recovery
   on the copy skips records its pages already carry. What matters is that nothing is written
   while the files are copied, so afterwards `changed()` tells whether InnoDB's LSN,
   checkpoint or dirty pages moved during the copy, in which case it must be taken again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from standby import log as slog
from standby.errors import ServiceError

SETTLE_S = 0.1  # the clean state must hold this long before a copy starts
_STATUS = ("Innodb_buffer_pool_pages_dirty", "Innodb_checkpoint_age", "Innodb_lsn_current",
           "Innodb_lsn_flushed", "Innodb_lsn_last_checkpoint")


@dataclass(frozen=True)
class InnoState:
    dirty: int
    checkpoint_age: int
    lsn: int
    flushed: int
    checkpoint: int

    @property
    def clean(self) -> bool:
        return self.dirty == 0 and self.lsn == self.flushed

    def same(self, other: InnoState) -> bool:
        return (self.lsn, self.checkpoint, self.dirty) == (other.lsn, other.checkpoint,
                                                           other.dirty)


class Held:
    """What `Database.held` yields: the InnoDB state when held, and a change check."""

    def __init__(self, cur: Any, before: InnoState | None,
                 settle: Callable[[], InnoState] | None = None) -> None:
        self._cur = cur
        self.before = before
        self._settle = settle

    def changed(self) -> bool:
        if self.before is None:
            return False
        return not _inno(self._cur).same(self.before)

    def resettle(self) -> None:
        """Before copying again: wait until InnoDB is clean and still once more, and compare
        the next copy with that state (LSN and checkpoint only grow, so comparing with the
        first one would call every later copy changed)."""
        if self.before is not None and self._settle is not None:
            self.before = self._settle()


def _inno(cur: Any) -> InnoState:
    cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (" + ",".join(["%s"] * len(_STATUS))
                + ")", _STATUS)
    v = {k: int(x) for k, x in cur.fetchall()}
    return InnoState(v.get("Innodb_buffer_pool_pages_dirty", 0),
                     v.get("Innodb_checkpoint_age", 0), v.get("Innodb_lsn_current", 0),
                     v.get("Innodb_lsn_flushed", 0), v.get("Innodb_lsn_last_checkpoint", 0))


def _var(cur: Any, name: str) -> str:
    cur.execute("SELECT @@GLOBAL." + name)
    return str(cur.fetchone()[0])


class Database:
    """The store's running MariaDB, as snapshots need it. `connect` comes from the composition
    root (`store.service.mariadb_for(settings).connect`)."""

    def __init__(self, connect: Callable[..., Any], *,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self._sleep = sleep
        self._monotonic = monotonic
        self.log = slog.get("standby.snapshot.quiesce")

    @contextmanager
    def held(self, *, block_commit: bool, clean: bool = False,
             clean_timeout_s: float = 60.0) -> Iterator[Held]:
        conn = self._connect(autocommit=True)
        cur = conn.cursor()
        staged = False
        old_pct: str | None = None
        try:
            try:
                if block_commit:
                    cur.execute("BACKUP STAGE START")
                    staged = True
                    cur.execute("BACKUP STAGE BLOCK_COMMIT")
                old_flush = _var(cur, "innodb_flush_log_at_trx_commit")
                cur.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 1")
                try:
                    cur.execute("FLUSH ENGINE LOGS")
                finally:
                    cur.execute(f"SET GLOBAL innodb_flush_log_at_trx_commit = {int(old_flush)}")
                before = None
                if clean:
                    old_pct = _var(cur, "innodb_max_dirty_pages_pct")
                    cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
                    before = self._wait_clean(cur, clean_timeout_s)
            except pymysql.err.Error as e:
                raise ServiceError(f"MariaDB refused to quiesce: {e.args[-1] if e.args else e}",
                                   hint="the store's MariaDB must be 10.4 or later (BACKUP "
                                        "STAGE) and reachable") from e
            yield Held(cur, before, lambda: self._wait_clean(cur, clean_timeout_s))
        finally:
            try:
                if old_pct is not None:
                    cur.execute(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(old_pct)}")
                if staged:
                    cur.execute("BACKUP STAGE END")
            except pymysql.err.Error as e:
                self.log.warning("db_release_failed", error=str(e))
            finally:
                conn.close()

    def _wait_clean(self, cur: Any, timeout_s: float) -> InnoState:
        deadline = self._monotonic() + timeout_s
        st = _inno(cur)
        settled_at: float | None = None
        while True:
            now = self._monotonic()
            if st.clean:
                settled_at = settled_at if settled_at is not None else now
                if now - settled_at >= SETTLE_S:
                    return st
            else:
                settled_at = None
            if now >= deadline:
                raise ServiceError(
                    f"InnoDB did not become clean within {timeout_s} s (dirty pages "
                    f"{st.dirty}, checkpoint age {st.checkpoint_age}); the dir backend cannot "
                    "copy the db volume safely", hint="raise snapshot.db_clean_timeout_s, or "
                    "snapshot the db volume with zfs/btrfs/lvm/ebs")
            self._sleep(0.05)
            nxt = _inno(cur)
            if not nxt.same(st):
                settled_at = None
            st = nxt
