"""Running a replay against a site's volumes: the files, the plan, the engine, the summary.

`find_logs` picks the files a selection reads (given files, or a redolog directory's archive and
current log in sequence order). `run(site, logs, selection)` refuses while the store service (the
mailboxd analog) runs on the site's volumes, starts the site's MariaDB if it is not up (and
stops it again afterwards), creates the schema on an empty database, marks the volumes "replay
in progress" for the duration (a store will not start over an interrupted replay: run the
replay again, it is idempotent), and hands the files to the fast engine or, with `naive`, to the
one-op-per-transaction engine.

With `index="defer"` (the CLI's default, a failover's) the replay is phase one of two: the
database and the blobs are brought forward, and each mailbox's index applies every op but leaves
its documents pending (the volume marked `CATCHUP_MARKER` first); phase two is the index
catch-up (`catchup.run`, `standby index catch-up`, or the store service at start-up). The
result says which mailboxes are behind and by how many documents. `index="now"` is the one-phase
replay, documents tokenized as the ops are applied.

`plan` is the dry run: which files, which ops (counts by type and by mailbox), which time range,
and where the replay would start — without touching anything.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby import log as slog
from standby import timefmt
from standby.redolog.ops import StoreIncomingBlob
from standby.replay import DEFAULT_CHUNK_OPS, fast, naive
from standby.replay.player import LogFile, Player, Selection, select_files
from standby.replay.result import ReplayResult
from standby.replay.worker import WorkerConfig
from standby.store.index import IndexMode
from standby.store.site import Site


@dataclass(frozen=True)
class EngineOptions:
    """How to replay (which engine, how wide, how far), apart from what to replay."""

    naive: bool = False
    threads: int = 50
    batch_ops: int = DEFAULT_CHUNK_OPS
    stop_on_error: bool = False
    limit: int | None = None
    index: IndexMode = "now"


@dataclass(frozen=True)
class Logs:
    """The log files a replay reads, in order, and a note for each file skipped by its header."""

    files: tuple[LogFile, ...]
    notes: tuple[str, ...] = ()


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


def find_logs(site: Site, selection: Selection, *, logfiles: Sequence[Path] = (),
              log_dir: Path | None = None) -> Logs:
    """The files a replay with `selection` reads: `logfiles` as given, else those of
    `log_dir` (default: the site's redolog volume) in sequence order."""
    selection.check()
    found, notes = select_files(log_dir or site.settings.volumes.redolog.path, selection,
                                list(logfiles) or None)
    return Logs(tuple(found), tuple(notes))


def plan(logs: Logs, selection: Selection) -> Plan:
    """The dry run: read the logs with the replay's selection rules, change nothing."""
    p = Plan(notes=list(logs.notes))
    for lf in logs.files:
        h = lf.header
        p.files.append({"path": str(lf.path), "seq": lf.seq, "size": lf.path.stat().st_size,
                        "first_op": timefmt.iso_utc(h.first_op_tstamp) if h and
                        h.first_op_tstamp else None, "open": bool(h and h.open),
                        "blobs_only": lf.blobs_only})
    player = Player(selection)
    for rec, _path in player.play(list(logs.files)):
        if isinstance(rec.op, StoreIncomingBlob):
            continue
        p.ops += 1
        p.by_op[rec.op.NAME] += 1
        p.by_mailbox[rec.mailbox_id] += 1
        p.first_ms = rec.tstamp if p.first_ms is None else min(p.first_ms, rec.tstamp)
        p.last_ms = rec.tstamp if p.last_ms is None else max(p.last_ms, rec.tstamp)
    p.player = player.stats.as_dict()
    return p


def run(site: Site, logs: Logs, selection: Selection, options: EngineOptions = EngineOptions(),
        progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Replay the selected ops of `logs` onto the site's volumes (see the module docstring);
    the site is opened with `Site.open`, which checks its volumes."""
    s = site.settings
    log = slog.get("standby.replay")
    site.check_stopped("zmplayredo")
    with site.database(), site.replaying():
        log.info("replay_start", files=len(logs.files),
                 engine="naive" if options.naive else "fast", index=options.index)
        t0 = time.perf_counter()
        files = list(logs.files)
        if options.index == "defer":
            site.index.mark_behind(f"replay --index defer started "
                                   f"{timefmt.iso_utc(timefmt.now_ms())}")
        if options.naive:
            conn = site.connect()
            try:
                res = naive.replay(files, selection, conn=conn, effects=site.effects,
                                   stop_on_error=options.stop_on_error, limit=options.limit,
                                   progress=progress, index_mode=options.index)
                site.index.close()
            finally:
                conn.close()
        else:
            cfg = WorkerConfig(str(s.mariadb_socket), s.store.mailbox_groups,
                               str(s.volumes.blob.path), str(s.volumes.index.path),
                               s.store.compress_blobs, s.store.compression_threshold,
                               options.index, retention=site.directory.retention())
            workers = max(1, min(options.threads, os.cpu_count() or 1))
            if selection.mailbox_ids is not None and len(selection.mailbox_ids) == 1:
                workers = 1  # as Zimbra: one mailbox, one thread
            res = fast.replay(files, selection, cfg=cfg, workers=workers,
                              chunk_ops=options.batch_ops, limit=options.limit,
                              stop_on_error=options.stop_on_error, progress=progress)
        res.notes.extend(logs.notes)
        res.seconds = time.perf_counter() - t0
    log.info("replay_done", ops=res.ops_applied, seconds=round(res.seconds, 3),
             errors=len(res.errors))
    return res
