"""Phase two of a failover: the index catch-up, from the blob volume (no log needed).

A replay with `--index defer` leaves each mailbox's index complete but for its documents: their
items are listed in the index's `pending` table (`store.index`). The catch-up reads each pending
message from its blob (`<mailbox>/msg/.../<id>-<mod_content>.msg`), parses it with the same
parser a one-phase replay uses (`store.mime.message_fields`), and writes the document; contacts
carry their text in the pending entry itself. Zimbra does the same after the fact: new items
start DEFERRED and a `BatchIndexTask` indexes them in batches (reference §3).

Invariants:
- exact: a document is built from the bytes the log carried (the blob holds them) by the same
  parser, so the index ends equal to a one-phase replay's;
- crash-safe and idempotent: each batch is one SQLite transaction that writes the documents and
  removes their pending entries together; killed at any moment, a re-run finds only what is left;
- safe beside a running store: blobs are read and parsed outside the transaction, and a document
  is written only if its entry is still pending and its item still at the content revision the
  text was read for (`MailboxIndex.fill`); a live change that got there first wins;
- the volume's marker (`CATCHUP_MARKER`) is removed only by a run over every mailbox that left
  nothing pending. The catch-up refuses to run while a replay is running or was interrupted.

`run` spreads mailboxes over one worker process per core (largest index first); with
`priority="idle"` (the store service's background catch-up) the workers run at the lowest CPU
priority (nice 19 and `SCHED_IDLE`), so the store's own requests always come first.
The single-mailbox step, `store.index.catch_up_mailbox`, is also what a search on a mailbox that
is behind runs first.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from standby._process import die_with_parent, forking
from standby import log as slog
from standby.errors import StandbyError, StateConflict
from standby.store.blobs import BlobStore
from standby.store.index import CATCHUP_BATCH, IndexStore, MailboxCatchup, catch_up_mailbox
from standby.store.site import Site

Priority = Literal["normal", "idle"]


@dataclass
class CatchupResult:
    mailboxes: int = 0
    documents: int = 0
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # indexes that could not be caught up
    seconds: float = 0.0
    workers: int = 0
    priority: str = "normal"
    cpu_seconds: float = 0.0
    # mailbox -> documents still pending after (0 for an index that could not be read)
    behind: dict[int, int] = field(default_factory=dict)
    marker_cleared: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailboxes": self.mailboxes, "documents": self.documents,
            "docs_per_s": round(self.documents / self.seconds, 1) if self.seconds else None,
            "seconds": round(self.seconds, 3), "workers": self.workers,
            "priority": self.priority, "cpu_seconds": round(self.cpu_seconds, 2),
            "missing_blobs": len(self.missing), "missing_samples": self.missing[:10],
            "errors": len(self.errors), "error_samples": self.errors[:10],
            "mailboxes_behind": len(self.behind),
            "documents_pending": sum(self.behind.values()),
            "complete": not self.behind, "marker_cleared": self.marker_cleared,
        }


def lower_priority() -> None:
    """This process at the lowest CPU priority: nice 19 and, on Linux, SCHED_IDLE."""
    os.nice(19 - os.nice(0))
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        try:
            os.sched_setscheduler(0, idle, os.sched_param(0))
        except OSError:
            pass  # nice 19 alone still yields to everything else


# -- worker processes --------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(index_root: str, blob_root: str, compress: bool, threshold: int,
                 priority: Priority, parent: int, batch: int) -> None:
    die_with_parent(parent)
    if priority == "idle":
        lower_priority()
    # Indexes stay open until this worker closes them in its own thread: closing a WAL database
    # checkpoints it (a copy and an fsync), which then overlaps the next mailbox's parsing. The
    # closes still queued when the pool is closed are finished before the worker exits.
    _W["index"] = IndexStore(Path(index_root), cache_size=1 << 30)
    _W["closer"] = closer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="closer")
    util.Finalize(None, closer.shutdown, exitpriority=10)
    _W["blobs"] = BlobStore(Path(blob_root), compress=compress, threshold=threshold)
    _W["batch"] = batch


def _work(m: int) -> tuple[MailboxCatchup, int] | tuple[int, str]:
    """One mailbox caught up, with the documents it still lacks (those whose blob is missing),
    or (mailbox, error) if its index cannot be read or written. A running store holding the
    index's write lock a moment too long is waited for, twice."""
    index: IndexStore = _W["index"]
    for attempt in range(3):
        try:
            with index.use(m, create=False) as idx:
                if idx is None:
                    return MailboxCatchup(m), 0
                mc = catch_up_mailbox(idx, _W["blobs"], m, batch=_W["batch"])
                left = idx.pending_count()
            _W["closer"].submit(index.close_one, m)
            return mc, left
        except sqlite3.OperationalError as e:
            index.close_one(m)
            if "locked" not in str(e) and "busy" not in str(e) or attempt == 2:
                return m, f"mailbox {m}: its index: {e}"
            time.sleep(1.0)
        except sqlite3.DatabaseError as e:  # corrupt, not a database, ...
            index.close_one(m)
            return m, f"mailbox {m}: its index: {e}"
    return m, f"mailbox {m}: its index stayed locked"


def run(site: Site, *, mailbox_ids: Iterable[int] | None = None, workers: int = 0,
        priority: Priority = "normal", batch: int = CATCHUP_BATCH,
        progress: Callable[[int, int], None] | None = None) -> CatchupResult:
    """Catch up the indexes of these mailboxes (default: every one that is behind) on the
    site's volumes, `batch` documents per transaction; `progress(done, total)` after each
    mailbox."""
    log = slog.get("standby.replay.catchup")
    if site.replay_interrupted():
        raise StateConflict("a replay is running on these volumes, or was interrupted: the "
                            "index cannot be caught up before the replay has finished",
                            hint="run the replay again (it is idempotent), then the catch-up")
    s = site.settings
    t0 = time.perf_counter()
    everything = mailbox_ids is None
    ids = site.index.mailbox_ids() if everything else sorted(set(mailbox_ids or ()))
    site.index.close()
    res = CatchupResult(priority=priority)
    # Largest index first, so the workers finish together; each worker counts what it finds
    # (opening every index here first would be a serial pass over the volume).
    order = sorted(ids, key=lambda m: (-site.index.size(m), m))
    res.workers = max(1, min(workers or os.cpu_count() or 1, len(order) or 1))
    log.info("catchup_start", mailboxes=len(order), workers=res.workers, priority=priority)
    failed: list[int] = []
    if order:
        args = (str(s.volumes.index.path), str(s.volumes.blob.path), s.store.compress_blobs,
                s.store.compression_threshold, priority, os.getpid(), batch)
        with forking() as ctx:
            pool = ctx.Pool(res.workers, initializer=_init_worker, initargs=args)
        try:
            for done, got in enumerate(pool.imap_unordered(_work, order), start=1):
                if isinstance(got[0], int):
                    failed.append(got[0])
                    res.errors.append(str(got[1]))
                    continue
                mc, left = got
                assert isinstance(mc, MailboxCatchup) and isinstance(left, int)
                if mc.documents or mc.missing or left:
                    res.mailboxes += 1
                res.documents += mc.documents
                res.cpu_seconds += mc.cpu_seconds
                res.missing += [f"mailbox {mc.mailbox_id} item {i}: blob missing"
                                for i in mc.missing]
                if left:
                    res.behind[mc.mailbox_id] = left
                if progress:
                    progress(done, len(order))
            pool.close()  # the workers finish their closes and exit
            pool.join()
        finally:
            pool.terminate()
    for m in failed:  # still behind, by what can be counted of an index the workers could not use
        try:
            res.behind[m] = site.index.pending_counts([m]).get(m, 0)
        except sqlite3.DatabaseError:
            res.behind[m] = 0
    site.index.close()
    if everything and not res.behind:
        site.index.clear_behind()
        res.marker_cleared = True
    res.seconds = time.perf_counter() - t0
    log.info("catchup_done", documents=res.documents, seconds=round(res.seconds, 3),
             behind=len(res.behind), missing=len(res.missing))
    return res


def main(argv: list[str] | None = None) -> int:
    """`python -m standby.replay.catchup --config FILE [--priority idle]`: the store service's
    background catch-up, as its own process (its workers are fork()ed from a process with one
    thread, never from the multi-threaded service)."""
    from standby import settings as settings_mod

    ap = argparse.ArgumentParser(prog="standby-index-catchup")
    ap.add_argument("--config", required=True)
    ap.add_argument("--priority", choices=["normal", "idle"], default="idle")
    ap.add_argument("--parent", type=int, default=0, help="die with this process (the service)")
    args = ap.parse_args(argv)
    log = slog.get("standby.replay.catchup")
    try:
        if args.parent:
            die_with_parent(args.parent)
        s = settings_mod.load(args.config)
        slog.configure("json", s.log.level)
        if args.priority == "idle":
            lower_priority()
        with Site(s) as site:
            run(site, priority=args.priority)
        return 0
    except StandbyError as e:
        log.error("catchup_failed", error=str(e), exit_code=e.exit_code)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
