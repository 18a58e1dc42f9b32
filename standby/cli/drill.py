"""`standby drill`: rehearse a failover end to end on embedded defaults."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from standby.cli import common


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
    d = rep.as_dict()
    if json_out:
        common.emit_json(d)
    else:
        common.emit(f"sets shipped           {d['sets']} (+ {d['redolog_snapshots']} redolog "
                    "snapshots)")
        common.emit(f"primary killed at      {d['killed_at']}")
        common.emit(f"last shipped position  {d['last_shipped']}")
        common.emit(f"RPO                    {d['rpo_s']} s "
                    f"({d['ops_never_shipped']} committed ops never shipped)")
        common.emit(f"RTO, mail              {d['rto_mail_s']} s (restore {d['restore_s']} s, "
                    f"replay {d['replay_s']} s)")
        common.emit(f"RTO, search            {d['rto_search_s']} s (index catch-up "
                    f"{d['catchup_s']} s, {d['catchup_documents']} documents)")
        common.emit(f"replay                 {d['replay_ops']} ops at "
                    f"{d['replay_ops_per_s']} ops/s")
        common.emit(f"db, blob == primary    {'yes' if d['equal_mail'] else 'NO'} right after "
                    "the replay")
        common.emit(f"standby == primary     {'yes' if d['equal'] else 'NO'}, index included, "
                    f"after the catch-up ({d['standby_digest'][:16]})")
        for n in d["notes"]:
            common.emit(f"note                   {n}")
    if not rep.equal:
        raise typer.Exit(8)
