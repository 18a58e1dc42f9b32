"""Running a replay against a store's volumes: checks, plan, engine, summary.

`run` refuses while the store service (the mailboxd analog) runs on the target volumes, starts
the target's MariaDB if it is not up (and stops it again afterwards), creates the schema on an
empty database, marks the volumes "replay in progress" for the duration (a store will not start
over an interrupted replay: run the replay again, it is idempotent), and hands the selected files
to the fast engine or, with `naive`, to the one-op-per-transaction engine.

`plan` is the dry run: which files, which ops (counts by type and by mailbox), which time range,
and where the replay would start — without touching anything.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby import log as slog
from standby import settings as settings_mod
from standby import timefmt
from standby.errors import StateConflict
from standby.redolog.ops import StoreIncomingBlob
from standby.replay import DEFAULT_CHUNK_OPS, fast, naive
from standby.replay.player import LogFile, Player, Selection, select_files
from standby.replay.result import ReplayResult
from standby.replay.worker import WorkerConfig
from standby.settings import Settings

MARKER = "replay.incomplete"


@dataclass(frozen=True)
class ReplayOptions:
    selection: Selection = Selection()
    logfiles: tuple[Path, ...] = ()
    log_dir: Path | None = None  # default: the target's redolog volume
    naive: bool = False
    threads: int = 50
    batch_ops: int = DEFAULT_CHUNK_OPS
    stop_on_error: bool = False
    limit: int | None = None


@dataclass
class Plan:
    files: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ops: int = 0
    by_op: Counter[str] = field(default_factory=Counter)
    by_mailbox: Counter[int] = field(default_factory=Counter)
    first_ms: int | None = None
    last_ms: int | None = None
    player: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files, "notes": self.notes, "ops": self.ops,
            "by_op": dict(sorted(self.by_op.items())),
            "mailboxes": len(self.by_mailbox),
            "busiest_mailboxes": dict(self.by_mailbox.most_common(10)),
            "first_op": timefmt.iso_utc(self.first_ms) if self.first_ms else None,
            "last_op": timefmt.iso_utc(self.last_ms) if self.last_ms else None,
            "player": self.player,
        }


def _files(s: Settings, opts: ReplayOptions) -> tuple[list[LogFile], list[str]]:
    opts.selection.check()
    log_dir = opts.log_dir or s.volumes.redolog.path
    return select_files(log_dir, opts.selection, list(opts.logfiles) or None)


def plan(s: Settings, opts: ReplayOptions) -> Plan:
    """The dry run: read the logs with the replay's selection rules, change nothing."""
    logs, notes = _files(s, opts)
    p = Plan(notes=notes)
    for lf in logs:
        h = lf.header
        p.files.append({"path": str(lf.path), "seq": lf.seq, "size": lf.path.stat().st_size,
                        "first_op": timefmt.iso_utc(h.first_op_tstamp) if h and
                        h.first_op_tstamp else None, "open": bool(h and h.open)})
    player = Player(opts.selection)
    for rec, _path in player.play(logs):
        if isinstance(rec.op, StoreIncomingBlob):
            continue
        p.ops += 1
        p.by_op[rec.op.NAME] += 1
        p.by_mailbox[rec.mailbox_id] += 1
        p.first_ms = rec.tstamp if p.first_ms is None else min(p.first_ms, rec.tstamp)
        p.last_ms = rec.tstamp if p.last_ms is None else max(p.last_ms, rec.tstamp)
    p.player = player.stats.as_dict()
    return p


def check_store_stopped(s: Settings) -> None:
    from standby.store.control import service_pid
    from standby.store.service import volumes_locked

    if service_pid(s) is not None or volumes_locked(s):
        raise StateConflict("Stop mailboxd before running zmplayredo: the store service is "
                            "running on these volumes", hint="`standby store stop "
                            "--service-only` stops it and leaves MariaDB up")


def marker_path(s: Settings) -> Path:
    return s.state_dir / MARKER


def run(s: Settings, opts: ReplayOptions,
        progress: Callable[[int], None] | None = None) -> ReplayResult:
    from standby.store.blobs import BlobStore
    from standby.store.effects import Effects
    from standby.store.index import IndexStore
    from standby.store.service import ensure_schema, mariadb_for

    log = slog.get("standby.replay")
    settings_mod.check_volumes(s)
    check_store_stopped(s)
    logs, notes = _files(s, opts)
    db = mariadb_for(s)
    started_db = False
    if not db.running():
        db.start()
        started_db = True
    try:
        ensure_schema(s, db)
        s.state_dir.mkdir(parents=True, exist_ok=True)
        marker = marker_path(s)
        marker.write_text(f"started {timefmt.iso_utc(timefmt.now_ms())} pid {os.getpid()}\n")
        log.info("replay_start", files=len(logs), engine="naive" if opts.naive else "fast")
        t0 = time.perf_counter()
        if opts.naive:
            conn = db.connect()
            try:
                effects = Effects(groups=s.store.mailbox_groups,
                                  blobs=BlobStore(s.volumes.blob.path,
                                                  compress=s.store.compress_blobs,
                                                  threshold=s.store.compression_threshold),
                                  index=IndexStore(s.volumes.index.path))
                res = naive.replay(logs, opts.selection, conn=conn, effects=effects,
                                   stop_on_error=opts.stop_on_error, limit=opts.limit,
                                   progress=progress)
                effects.index.close()
            finally:
                conn.close()
        else:
            cfg = WorkerConfig(str(s.mariadb_socket), s.store.mailbox_groups,
                               str(s.volumes.blob.path), str(s.volumes.index.path),
                               s.store.compress_blobs, s.store.compression_threshold)
            workers = max(1, min(opts.threads, os.cpu_count() or 1))
            if opts.selection.mailbox_ids is not None and len(opts.selection.mailbox_ids) == 1:
                workers = 1  # as Zimbra: one mailbox, one thread
            res = fast.replay(logs, opts.selection, cfg=cfg, workers=workers,
                              chunk_ops=opts.batch_ops, limit=opts.limit,
                              stop_on_error=opts.stop_on_error, progress=progress)
        res.notes.extend(notes)
        res.seconds = time.perf_counter() - t0
        marker.unlink(missing_ok=True)
        log.info("replay_done", ops=res.ops_applied, seconds=round(res.seconds, 3),
                 errors=len(res.errors))
        return res
    finally:
        if started_db:
            db.stop()
