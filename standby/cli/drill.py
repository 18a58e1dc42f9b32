"""`standby drill`: rehearse a failover end to end on embedded defaults."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from standby import notify, observe, timefmt
from standby import settings as settings_mod
from standby.cli import common
from standby.status import journal

if TYPE_CHECKING:  # the drill module itself is imported when the command runs (start-up time)
    from standby.drill import DrillReport


def drill_command(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option(
        "--target", help="Ship to this target URL (default: a file:// folder in the work "
        "folder); its settings come from the target section of --config, if one is given.")]
    = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="Snapshot backend of the primary's and the standby's volumes: dir "
        "(folders in the work folder), zfs (datasets under --root) or btrfs (subvolumes in "
        "--root).")] = "dir",
    root: Annotated[str | None, typer.Option(
        "--root", help="With --backend zfs: an existing dataset (pool/ds) to make the "
        "volumes under; with btrfs: an existing folder on btrfs.")] = None,
    accounts: Annotated[int, typer.Option(help="Accounts the load generator uses.")] = 20,
    seed: Annotated[int | None, typer.Option(help="Seed (default: random, printed).")]
    = None,
    workers: Annotated[int, typer.Option(help="Concurrent load clients.")] = 4,
    set_every: Annotated[float, typer.Option(help="Seconds between snapshot sets.")] = 10.0,
    redolog_every: Annotated[float, typer.Option(
        help="Seconds between redolog snapshots.")] = 3.0,
    kill_min: Annotated[float, typer.Option(help="Earliest kill, seconds after start.")]
    = 25.0,
    kill_max: Annotated[float, typer.Option(help="Latest kill, seconds after start.")] = 40.0,
    mailbox_groups: Annotated[int, typer.Option(help="mboxgroupN databases.")] = 100,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to build the primary, the site and the standby (default: temp).")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the work folder for inspection.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON report on the last line.")]
    = False,
    runs: Annotated[int, typer.Option(
        "--runs", help="Run N drills (seeds --seed, --seed+1, ... or random) and print the "
        "distribution of RPO and RTO.")] = 1,
    sabotage: Annotated[str | None, typer.Option(
        "--sabotage", help="Test the drill's own check: 'redolog' removes the newest redolog "
        "snapshot from the target before the pull, 'segment' one streamed segment; the drill "
        "must report the gap and fail.")] = None,
    stream: Annotated[bool, typer.Option(
        "--stream/--no-stream", help="Stream the redo log to the target (standby stream) "
        "beside the snapshots.")] = True,
) -> None:
    """Rehearse a failover: load a primary, snapshot and ship, kill it, restore, replay, prove.

    A primary store is loaded while sets and redolog snapshots are taken and shipped to a target
    (`standby ship`) on a compressed cadence; the primary is killed at a random moment; the
    standby pulls the newest shipped set (`standby pull`), replays (`zmplayredo --set latest`),
    and is compared with the primary's own log cut where the standby's log ends. Exit 8 if a
    drill is not ok (digests differ, committed ops lost, a gap in what was shipped)."""
    from standby import drill, drill_runs

    if not 0 < kill_min <= kill_max:
        raise typer.BadParameter("need 0 < --kill-min <= --kill-max")
    if runs < 1:
        raise typer.BadParameter("--runs must be at least 1")
    # A target other than the default folder may need settings (an S3 endpoint, a key).
    target_settings = common.settings(ctx).target if common.ctx_obj(ctx).config else None

    def say(msg: str) -> None:
        sys.stderr.write(f"drill: {msg}\n")
        sys.stderr.flush()

    reports = []
    for i in range(runs):
        if runs > 1:
            say(f"run {i + 1} of {runs}")
        rep = drill.run(workdir=workdir, accounts=accounts,
                        seed=None if seed is None else seed + i, workers=workers,
                        set_every_s=set_every, redolog_every_s=redolog_every,
                        kill_window_s=(kill_min, kill_max), groups=mailbox_groups, keep=keep,
                        say=say, target=target, target_settings=target_settings,
                        backend=backend, root=root, sabotage=sabotage, stream=stream)
        reports.append(rep)
        _record(ctx, rep)
        if json_out:
            common.emit_json(rep.as_dict())
        else:
            for line in report_lines(rep):
                common.emit(line)
    if runs > 1:
        dist = drill_runs.summary(reports)
        if json_out:
            common.emit_json(dist)
        else:
            for line in drill_runs.lines(dist):
                common.emit(line)
    if not all(r.ok for r in reports):
        raise typer.Exit(8)


def _record(ctx: typer.Context, rep: DrillReport) -> None:
    """With a configuration (-c, or found where settings are looked for), the drill's result
    goes into that server's journal (status, metrics) and is mailed when `[notify]` asks."""
    if common.ctx_obj(ctx).config is None and settings_mod.find_config(None) is None:
        return
    s = common.settings(ctx)
    d = rep.as_dict()
    keys = ("ok", "committed_ops_lost", "divergent_mailboxes", "rpo_s", "ops_after_cut",
            "rto_s", "replay_ops_per_s")
    journal.record(s.state_dir, "drill", ok=rep.ok, at_ms=timefmt.now_ms(),
                   error=None if rep.ok else "; ".join(_why(rep)),
                   detail={k: d[k] for k in keys})
    notify.drill_result(s, d)
    observe.after(s, timefmt.now_ms())


def _why(rep: DrillReport) -> list[str]:
    out = [rep.gap] if rep.gap else []
    if rep.committed_ops_lost:
        out.append(f"{rep.committed_ops_lost} committed ops lost")
    if rep.divergent_mailboxes or not rep.equal:
        out.append(f"{rep.divergent_mailboxes} divergent mailboxes")
    return out or ["replay errors"]


def report_lines(rep: DrillReport) -> list[str]:
    """The drill's report in words."""
    same = (f"yes (digest {rep.standby_digest[:16]})" if rep.equal else
            f"NO: standby {rep.standby_digest[:16]}, primary {rep.reference_digest[:16]}")
    return [
        f"result                 {'ok' if rep.ok else 'FAILED'}",
        f"sets shipped           {rep.sets} (+ {rep.redolog_snapshots} redolog snapshots)",
        f"primary killed at      {rep.killed_at}",
        f"last shipped snapshot  {rep.last_shipped}",
        f"standby reached        {rep.reached} (last commit {rep.last_commit or 'none'})",
        f"RPO                    {rep.rpo_s} s ({rep.ops_after_cut} ops committed after that "
        "position)",
        f"committed ops lost     {rep.committed_ops_lost}",
        f"divergent mailboxes    {rep.divergent_mailboxes}",
        f"RTO, mail              {rep.rto_mail_s} s (restore {rep.restore_s} s, replay "
        f"{rep.replay_s} s)",
        f"RTO, search            {rep.rto_search_s} s (index catch-up {rep.catchup_s} s, "
        f"{rep.catchup_documents} documents)",
        f"RTO                    {rep.rto_s} s (mail, then the store started)",
        f"replay                 {rep.replay_ops} ops at {rep.replay_ops_per_s} ops/s",
        f"db, blob == primary    {'yes' if rep.equal_mail else 'NO'} right after the replay "
        "(the index once caught up: next line)",
        f"standby == primary     {same}",
        *(f"note                   {n}" for n in rep.notes),
    ]
