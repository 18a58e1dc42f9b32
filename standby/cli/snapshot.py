"""`standby snapshot ...`: sets, redolog snapshots, the catalog, retention, manifest checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from standby import timefmt
from standby.cli import common
from standby.errors import ServiceError
from standby.snapshot import sets
from standby.snapshot.execute import Outcome
from standby.snapshot.plan import Plan

app = typer.Typer(help="Snapshot sets of the four volumes, redolog snapshots, the catalog and "
                       "retention.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; take nothing.")]


def _emit_plan(p: Plan, json_out: bool) -> None:
    if json_out:
        common.emit_json(p.as_dict())
    else:
        common.emit("\n".join(p.describe()))


def _take(ctx: typer.Context, kind: str, overrides: dict[str, Any], dry_run: bool,
          json_out: bool) -> None:
    s = common.settings(ctx, overrides)
    if dry_run:
        _emit_plan(sets.plan_take(kind, s), json_out)
    else:
        _emit_outcome(sets.take(kind, s), json_out)


def _emit_outcome(res: Outcome, json_out: bool) -> None:
    m = res.manifest
    if json_out:
        common.emit_json(res.as_dict())
        return
    common.emit(f"{m.kind} {m.id}: {len(m.snapshots)} snapshot(s), skew {m.skew_ms} ms, "
                f"tool overhead {res.tool_ms} ms; manifest {res.path}")
    for s in m.snapshots:
        common.emit(f"  {s.volume:8s} {s.backend:6s} {s.ref}  taken "
                    f"{timefmt.verify_stamp(s.taken_at_ms)} ({s.taken_at_ms - s.started_ms} ms)")


@app.command("set")
def set_(
    ctx: typer.Context,
    atomic: Annotated[bool | None, typer.Option(
        "--atomic/--staggered", help="All volumes of one ZFS pool / EC2 instance in one "
        "instant (default: snapshot.atomic).")] = None,
    stagger: Annotated[float | None, typer.Option(
        "--stagger", help="Seconds between volumes, 0 to 3600 (default: snapshot.stagger_s, "
        "1 s).")] = None,
    quiesce: Annotated[bool | None, typer.Option(
        "--quiesce/--no-quiesce", help="Block MariaDB commits (BACKUP STAGE) around the db "
        "volume's snapshot (default: snapshot.quiesce_db).")] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Take a set: db, blob, index, redolog, a stagger apart (or at once with --atomic)."""
    _take(ctx, "set", {"snapshot.atomic": atomic, "snapshot.stagger_s": stagger,
                       "snapshot.quiesce_db": quiesce}, dry_run, json_out)


@app.command()
def redolog(ctx: typer.Context, dry_run: DryRunOpt = False, json_out: JsonOpt = False) -> None:
    """Snapshot the redolog volume alone (the 15-minute cadence)."""
    _take(ctx, "redolog", {}, dry_run, json_out)


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Sets and redolog snapshots in the catalog, oldest first, with times and skew."""
    rows = sets.listing(common.settings(ctx))
    if json_out:
        common.emit_json(rows)
        return
    if not rows:
        common.emit("no snapshots")
        return
    common.emit(f"{'ID':28s} {'KIND':8s} {'STATUS':10s} {'TAKEN (GMT)':20s} {'SKEW ms':>8s} "
                f"{'MODE':10s} VOLUMES (shipped*)")
    for r in rows:
        mode = "atomic" if r["atomic"] else (f"{r['stagger_s']:g}s" if r["kind"] == "set"
                                             else "-")
        vols = " ".join(v + ("*" if v in r["shipped"] else "") for v in r["volumes"])
        common.emit(f"{r['id']:28s} {r['kind']:8s} {r['status']:10s} {r['taken_at']:20s} "
                    f"{r['skew_ms']:>8d} {mode:10s} {vols}")


@app.command()
def prune(ctx: typer.Context, dry_run: DryRunOpt = False, json_out: JsonOpt = False) -> None:
    """Apply retention (the retention section of the config); snapshots an unshipped one still needs are held."""
    from standby.snapshot import prune as prune_mod

    res = prune_mod.prune(common.settings(ctx), dry_run=dry_run)
    if json_out:
        common.emit_json(res.as_dict())
    else:
        verb = "would prune" if dry_run else "pruned"
        done = res.prune if dry_run else [i for i in res.removed if i in res.prune]
        for mid, why in res.keep.items():
            common.emit(f"keep   {mid}  ({', '.join(why)})")
        for mid in done:
            common.emit(f"{verb:6s} {mid}")
        for mid in res.incomplete:
            common.emit(f"{'would remove' if dry_run else 'removed'} incomplete {mid}")
        for e in res.errors:
            common.emit(f"error  {e}")
    if res.errors:
        raise ServiceError(f"{len(res.errors)} snapshot(s) could not be pruned",
                           hint="see the errors above; their manifests stay in the catalog")


@app.command("verify-manifest")
def verify_manifest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The manifest file.")],
    json_out: JsonOpt = False,
) -> None:
    """Check a manifest's signature and form; print it if it is intact."""
    m = sets.verify(path, common.settings(ctx))
    if json_out:
        common.emit_json(m.as_dict())
    else:
        common.emit(f"{path}: intact, {m.kind} {m.id} of server {m.server_id}, {m.status}, "
                    f"{len(m.snapshots)} snapshot(s), replay from seq {m.replay.seq} offset "
                    f"{m.replay.offset}")
