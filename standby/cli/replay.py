"""`standby replay` and `zmplayredo`: Zimbra's options, plus standby's own.

Zimbra's: --fromTime, --toTime (Zimbra's nine local-time formats and the guide's
"yyyy/MM/dd HH:mm:ss:SSS"), --fromSeq, --toSeq, --mailboxId, --logfiles, --threads,
--queueCapacity, --stopOnError. standby's: --set ID|latest (start at a snapshot set's exact redo
position), --dry-run (print the plan), --json (summary), --naive (the baseline engine),
--batch-ops, --index now|defer (default defer: phase one brings db and blobs forward and leaves
the index's documents pending for `standby index catch-up` or the store's start-up; now: one
phase), --config.

Exit codes: 0 replayed without errors; 1 replayed, but some ops failed (see the summary);
2 bad arguments; 5 the store service is running; 6 a log is corrupt or newer; 9 a log file or
set does not exist.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from standby import settings as settings_mod
from standby import timefmt
from standby.catalog import local
from standby.catalog.manifest import require_key
from standby.catalog.start import replay_start
from standby.cli import common
from standby.errors import UsageError
from standby.replay import DEFAULT_CHUNK_OPS, engine
from standby.replay.player import Selection
from standby.store.index import INDEX_MODES
from standby.store.site import Site


def _settings(ctx: typer.Context, config: Path | None) -> settings_mod.Settings:
    if config is not None:
        common.ctx_obj(ctx).config = config
    return common.settings(ctx)


def replay_command(
    ctx: typer.Context,
    from_time: Annotated[str | None, typer.Option(
        "--fromTime", help='Replay ops whose change record is at or after this local time, '
        'e.g. "2021/10/17 08:00:00:000".')] = None,
    to_time: Annotated[str | None, typer.Option(
        "--toTime", help="Replay ops committed at or before this local time.")] = None,
    from_seq: Annotated[int | None, typer.Option(
        "--fromSeq", help="First log sequence to read (inclusive).")] = None,
    to_seq: Annotated[int | None, typer.Option(
        "--toSeq", help="Last log sequence to read (inclusive).")] = None,
    mailbox_id: Annotated[int | None, typer.Option(
        "--mailboxId", help="Replay only this mailbox (and ops of all mailboxes).")] = None,
    logfiles: Annotated[list[Path] | None, typer.Option(
        "--logfiles", help="Exactly these log files, in this order (repeatable).")] = None,
    threads: Annotated[int, typer.Option(
        "--threads", help="Upper bound on worker processes (Zimbra's default 50).")] = 50,
    queue_capacity: Annotated[int, typer.Option(
        "--queueCapacity", help="Accepted for Zimbra compatibility; see --batch-ops.")] = 100,
    stop_on_error: Annotated[bool, typer.Option(
        "--stopOnError", help="Stop at the first op that fails (default: log and go on).")]
    = False,
    set_id: Annotated[str | None, typer.Option(
        "--set", help="Start at this snapshot set's recorded redo position (ID or 'latest').")]
    = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be replayed and change nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON summary on the last line.")]
    = False,
    naive: Annotated[bool, typer.Option(
        "--naive", help="One op per transaction, statement by statement (the baseline).")]
    = False,
    batch_ops: Annotated[int, typer.Option(
        "--batch-ops", help="Ops folded and applied together per batch (fast engine). "
        "Memory grows with it (about 0.4 GB per 100,000 ops of a typical mix); larger batches "
        "fold more away.")]
    = DEFAULT_CHUNK_OPS,
    index: Annotated[str, typer.Option(
        "--index", help="defer: bring db and blobs forward, leave the index's documents pending "
        "for the catch-up (`standby index catch-up`, or the store's start-up), as a failover "
        "wants; now: tokenize them during the replay (one phase).")] = "defer",
    log_dir: Annotated[Path | None, typer.Option(
        "--log-dir", help="Redo log directory (default: the configured redolog volume).")]
    = None,
    catalog: Annotated[Path | None, typer.Option(
        "--catalog", help="With --set: read the set's manifest from this catalog folder (one "
        "that came from a transfer target) instead of the state directory's.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file.")]
    = None,
) -> None:
    """Replay redo logs onto the store's volumes (zmplayredo)."""
    from_ms = timefmt.parse(from_time, option="--fromTime") if from_time else None
    to_ms = timefmt.parse(to_time, option="--toTime") if to_time else None
    sel = Selection(from_time=from_ms, to_time=to_ms, from_seq=from_seq, to_seq=to_seq,
                    mailbox_ids=frozenset({mailbox_id}) if mailbox_id is not None else None)
    sel.check()
    if mailbox_id is not None and mailbox_id <= 0:
        raise UsageError("--mailboxId must be a positive mailbox id")
    if threads < 1 or batch_ops < 1 or queue_capacity < 1:
        raise UsageError("--threads, --queueCapacity and --batch-ops must be at least 1")
    if index not in INDEX_MODES:
        raise UsageError(f"--index must be now or defer, not {index!r}")
    s = _settings(ctx, config)
    if catalog is not None and set_id is None:
        raise UsageError("--catalog goes with --set: it says where the set's manifest is")
    if set_id is not None:
        sel = _from_set(s, set_id, sel, catalog)
    if from_ms is not None and not json_out:
        sys.stderr.write(f"Replaying from {timefmt.echo(from_ms)}\n")
    site = Site.open(s)
    logs = engine.find_logs(site, sel, logfiles=tuple(logfiles or ()), log_dir=log_dir)
    opts = engine.EngineOptions(naive=naive, threads=threads, batch_ops=batch_ops,
                                stop_on_error=stop_on_error,
                                index="now" if index == "now" else "defer")
    if dry_run:
        p = engine.plan(logs, sel)
        if json_out:
            common.emit_json(p.as_dict())
        else:
            d = p.as_dict()
            common.emit(f"would replay {d['ops']} ops from {len(d['files'])} files "
                        f"({d['first_op']} .. {d['last_op']}) over {d['mailboxes']} mailboxes")
            for f in d["files"]:
                common.emit(f"  {f['path']}  seq {f['seq']}  {f['size']} bytes")
            for n in d["notes"]:
                common.emit(f"  skipped: {n}")
            for op, n in d["by_op"].items():
                common.emit(f"  {op:20s} {n}")
        return
    tty = sys.stderr.isatty() and not json_out
    t0 = time.perf_counter()

    def progress(done: int) -> None:
        if tty:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            sys.stderr.write(f"\rreplay: {done} ops ({rate:,.0f} ops/s)")
            sys.stderr.flush()

    res = engine.run(site, logs, sel, opts, progress=progress)
    if tty:
        sys.stderr.write("\n")
    d = res.as_dict()
    if json_out:
        common.emit_json(d)
    else:
        common.emit(f"replayed {d['ops_applied']} ops in {d['seconds']} s "
                    f"({d['ops_per_s']} ops/s) with the {d['engine']} engine")
        common.emit(f"  db {d['db']}  blob {d['blob']}  index {d['index']}")
        ix = d["phases"]["index"]
        if ix["mode"] == "now":
            common.emit("  index: documents indexed during the replay")
        elif ix["state"] == "done":
            common.emit("  index: complete, nothing was left pending")
        else:
            common.emit(f"  index: {ix['documents_pending']} documents pending in "
                        f"{ix['mailboxes_behind']} mailboxes; mail is ready now, search once "
                        "`standby index catch-up` has run (or the store catches up when it "
                        "starts)")
        pl = d["player"]
        common.emit(f"  uncommitted {pl.get('uncommitted')}, aborted {pl.get('aborted')}, "
                    f"orphans {pl.get('orphans')}, problems {len(pl.get('problems', []))}")
        for prob in pl.get("problems", [])[:10]:
            common.emit(f"  problem: {prob}")
        for err in d["error_samples"]:
            common.emit(f"  error: {err}")
    if res.errors:
        raise typer.Exit(1)


def _from_set(s: settings_mod.Settings, set_id: str, sel: Selection,
              catalog: Path | None) -> Selection:
    """Start at a snapshot set's recorded replay start (its manifest), unless --fromTime."""
    cat = local.for_settings(s) if catalog is None else local.LocalCatalog.at(
        catalog, s.server_id, require_key(s.snapshot.manifest_key))
    start = replay_start(cat, set_id)
    return Selection(from_time=sel.from_time if sel.from_time is not None
                     else start.from_time_ms, to_time=sel.to_time,
                     from_seq=sel.from_seq if sel.from_seq is not None else start.from_seq,
                     to_seq=sel.to_seq, mailbox_ids=sel.mailbox_ids)


def expand_multi(argv: list[str], option: str = "--logfiles") -> list[str]:
    """Zimbra takes `--logfiles a b c`; typer wants `--logfiles a --logfiles b ...`."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        out.append(a)
        i += 1
        if a == option:
            first = True
            while i < len(argv) and not argv[i].startswith("-"):
                if not first:
                    out.append(option)
                out.append(argv[i])
                first = False
                i += 1
    return out
