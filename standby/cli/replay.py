"""`standby replay` and `zmplayredo`: Zimbra's options, plus standby's own.

Zimbra's: --fromTime, --toTime (Zimbra's nine local-time formats and the guide's
"yyyy/MM/dd HH:mm:ss:SSS"), --fromSeq, --toSeq, --mailboxId, --logfiles, --threads,
--queueCapacity, --stopOnError. standby's: --set ID|latest (start at a snapshot set's exact redo
position), --dry-run (print the plan), --json (summary), --naive (the baseline engine),
--batch-ops, --index now|defer (default defer: phase one brings db and blobs forward and leaves
the index's documents pending for `standby index catch-up` or the store's start-up; now: one
phase), and -c/--config as every command.

Exit codes: 0 replayed without errors; 1 replayed, but some ops failed (see the summary);
2 bad arguments; 5 the store service is running; 6 a log is corrupt or newer; 9 a log file or
set does not exist.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from standby import settings as settings_mod
from standby import observe, timefmt
from standby.catalog import local
from standby.catalog.manifest import require_key
from standby.catalog.start import replay_start
from standby.cli import common
from standby.errors import UsageError
from standby.replay import DEFAULT_CHUNK_OPS, engine, result
from standby.replay.player import Selection
from standby.replay.result import ReplayResult
from standby.store.index import INDEX_MODES
from standby.store.site import Site


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
    s = common.settings(ctx)
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
            for line in plan_lines(p):
                common.emit(line)
        return
    tty = sys.stderr.isatty() and not json_out
    t0 = time.perf_counter()

    def progress(done: int) -> None:
        if tty:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            sys.stderr.write(f"\rreplay: {done} ops ({rate:,.0f} ops/s)")
            sys.stderr.flush()

    with observe.action(s, "replay") as noted:
        res = engine.run(site, logs, sel, opts, progress=progress)
        noted.detail = {"ops": res.ops_applied, "seconds": round(res.seconds, 3),
                        "ops_per_s": round(res.ops_applied / res.seconds) if res.seconds else 0}
        noted.add = {"replay_ops": res.ops_applied}
    if tty:
        sys.stderr.write("\n")
    if json_out:
        common.emit_json(res.as_dict())
    else:
        for line in summary_lines(res):
            common.emit(line)
    if res.errors:
        raise typer.Exit(1)


# How each volume's outcome reads in the summary ("none": the op does not concern that volume).
_OUTCOME_WORDS = {"applied": "applied", "skipped": "already there", "missing": "mailbox missing",
                  "error": "failed", "written": "written", "present": "already there",
                  "missing-source": "source missing", "deleted": "deleted"}


def _volume_words(counts: Mapping[str, int]) -> str:
    parts = [f"{n} {_OUTCOME_WORDS.get(k, k)}" for k, n in sorted(counts.items())
             if k != "none" and n]
    return ", ".join(parts) or "nothing to do"


def plan_lines(p: engine.Plan) -> list[str]:
    """The dry run in words: what would be read and replayed, times as --fromTime takes them."""
    n_files = f"{len(p.files)} file{'s' if len(p.files) != 1 else ''}"
    if p.ops and p.first_ms is not None and p.last_ms is not None:
        head = (f"would replay {p.ops} ops from {n_files} ({timefmt.echo(p.first_ms)} .. "
                f"{timefmt.echo(p.last_ms)}) over {len(p.by_mailbox)} mailboxes")
    else:
        head = f"would replay no ops from {n_files}"
    left_out = result.not_selected(p.player)
    lines = [head + (f"; {left_out} other committed ops in them not selected" if left_out
                     else "")]
    for f in p.files:
        lines.append(f"  {f['path']}  seq {f['seq']}  {f['size']} bytes"
                     + ("  (open)" if f["open"] else ""))
    lines += [f"  skipped: {n}" for n in p.notes]
    lines += [f"  {op:20s} {n}" for op, n in sorted(p.by_op.items())]
    return lines


def summary_lines(res: ReplayResult) -> list[str]:
    """The replay's outcome in words: applied, already there and not selected apart."""
    c = res.counts
    rate = f" ({c.selected / res.seconds:,.0f} ops/s)" if res.seconds else ""
    lines = [f"read {c.selected} selected ops in {res.seconds:.3f} s{rate} with the "
             f"{res.engine} engine",
             f"  {c.applied} applied, {c.skipped} skipped (already present), "
             f"{c.not_selected} not selected"
             + (f", {c.missing} for a mailbox not on the target" if c.missing else "")
             + (f", {c.failed} failed" if c.failed else ""),
             f"  db: {_volume_words(res.db)}; blob: {_volume_words(res.blob)}; "
             f"index: {_volume_words(res.index)}",
             _index_phase_words(res)]
    if res.not_applied:
        lines.append(f"  {res.not_applied_text()}")
    pl = res.player
    problems = list(pl.get("problems", []))
    lines.append(f"  uncommitted {pl.get('uncommitted', 0)}, aborted {pl.get('aborted', 0)}, "
                 f"orphans {pl.get('orphans', 0)}, problems {len(problems)}")
    lines += [f"  problem: {prob}" for prob in problems[:10]]
    lines += [f"  error: {err}" for err in res.errors[:10]]
    if len(res.errors) > 10:
        lines.append(f"  ... and {len(res.errors) - 10} more errors")
    return lines


def _index_phase_words(res: ReplayResult) -> str:
    """Phase two in words: indexed during the replay, complete, or what the catch-up owes."""
    ix = res.phases()["index"]
    if ix["mode"] == "now":
        return "  index: documents indexed during the replay"
    if ix["state"] == "done":
        return "  index: complete, nothing was left pending"
    return (f"  index: {ix['documents_pending']} documents pending in {ix['mailboxes_behind']} "
            "mailboxes; mail is ready now, search once `standby index catch-up` has run (or the "
            "store catches up when it starts)")


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
