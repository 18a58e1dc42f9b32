"""`standby drill`: rehearse a failover end to end on embedded defaults."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from standby.cli import common

if TYPE_CHECKING:  # the drill module itself is imported when the command runs (start-up time)
    from standby.drill import DrillReport


def drill_command(
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
) -> None:
    """Rehearse a failover: load a primary, snapshot and ship, kill it, restore, replay, prove.

    A primary store is loaded while sets and redolog snapshots are taken and copied to a standby
    site on a compressed cadence; the primary is killed at a random moment; the standby is
    restored from the newest shipped set, replayed, and compared with the primary as of the last
    shipped redo position. Exit 8 if they differ."""
    from standby import drill

    if not 0 < kill_min <= kill_max:
        raise typer.BadParameter("need 0 < --kill-min <= --kill-max")

    def say(msg: str) -> None:
        sys.stderr.write(f"drill: {msg}\n")
        sys.stderr.flush()

    rep = drill.run(workdir=workdir, accounts=accounts, seed=seed, workers=workers,
                    set_every_s=set_every, redolog_every_s=redolog_every,
                    kill_window_s=(kill_min, kill_max), groups=mailbox_groups, keep=keep,
                    say=say)
    if json_out:
        common.emit_json(rep.as_dict())
    else:
        for line in report_lines(rep):
            common.emit(line)
    if not rep.equal:
        raise typer.Exit(8)


def report_lines(rep: DrillReport) -> list[str]:
    """The drill's report in words."""
    same = (f"yes (digest {rep.standby_digest[:16]})" if rep.equal else
            f"NO: standby {rep.standby_digest[:16]}, primary {rep.reference_digest[:16]}")
    return [
        f"sets shipped           {rep.sets} (+ {rep.redolog_snapshots} redolog snapshots)",
        f"primary killed at      {rep.killed_at}",
        f"last shipped position  {rep.last_shipped}",
        f"RPO                    {rep.rpo_s} s ({rep.ops_never_shipped} committed ops never "
        "shipped)",
        f"RTO, mail              {rep.rto_mail_s} s (restore {rep.restore_s} s, replay "
        f"{rep.replay_s} s)",
        f"RTO, search            {rep.rto_search_s} s (index catch-up {rep.catchup_s} s, "
        f"{rep.catchup_documents} documents)",
        f"replay                 {rep.replay_ops} ops at {rep.replay_ops_per_s} ops/s",
        f"db, blob == primary    {'yes' if rep.equal_mail else 'NO'} right after the replay "
        "(the index once caught up: next line)",
        f"standby == primary     {same}",
        *(f"note                   {n}" for n in rep.notes),
    ]
