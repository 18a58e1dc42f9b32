"""`standby ship`, `standby pull`, `standby verify`, `standby prune --target`: shipping.

Exit codes: 0 done; 2 a bad URL or flag; 3 bad configuration (no target, a target outside
`target.allowed`, credentials S3 refused, a wrong or missing encryption key); 4 a target folder
that is not there; 5 the store (or MariaDB) runs on the standby's volumes, or another run holds
the target; 7 the target or a command failed (an interrupted upload continues on the next run);
8 a signature or checksum does not match (verify names every object); 9 a bucket, set, snapshot
or parent that does not exist (an incremental whose parent is gone says to send it full).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Annotated, Any

import typer

from standby import observe
from standby.cli import common
from standby.errors import IntegrityError, ServiceError
from standby.transfer import factory
from standby.transfer._base import Progress

TargetOpt = Annotated[str | None, typer.Option(
    "--target", help="Target URL (default: target.url): s3://bucket/prefix, file:///path, "
    "zfs://pool/dataset or zfs://user@host/pool/dataset, btrfs:///path or "
    "btrfs://user@host/path.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON summary on the last line.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[Progress], None] | None]:
    """A rich progress bar on a terminal (one line per object); None otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)
    from rich.progress import Progress as Bar

    tasks: dict[str, Any] = {}
    with Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
             TransferSpeedColumn(), TimeRemainingColumn(),
             console=Console(stderr=True), transient=True) as bar:
        def update(p: Progress) -> None:
            if p.what not in tasks:
                tasks[p.what] = bar.add_task(p.what, total=p.total)
            bar.update(tasks[p.what], completed=p.done, total=p.total)

        yield update


def ship_command(
    ctx: typer.Context,
    target: TargetOpt = None,
    dry_run: DryRunOpt = False,
    bwlimit: Annotated[str | None, typer.Option(
        "--bwlimit", help="Average rate limit, as rsync's: KiB/s, or with K, M, G (default: "
        "target.bwlimit).")] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Send full streams, not incrementals (after a parent was lost).")]
    = False,
    json_out: JsonOpt = False,
) -> None:
    """Send what the target lacks: sets first, then redolog snapshots (incremental where the
    target holds a parent). An interrupted ship continues where it stopped."""
    from standby.transfer import ship

    s = common.settings(ctx, {"target.bwlimit": bwlimit})
    t = factory.open_target(target, s)
    noting = nullcontext(observe.Outcome()) if dry_run else observe.action(s, "ship")
    with progress_bar(not json_out) as bar, noting as noted:
        out = ship.ship(s, t, dry_run=dry_run, full=full, progress=bar)
        if isinstance(out, ship.ShipResult):
            d = out.as_dict()
            noted.detail = {"target": d["target"], "snapshots": len(d["shipped"]),
                            "plain_bytes": d["plain_bytes"]}
            noted.add = {"ship_bytes": int(d["plain_bytes"])}
    if isinstance(out, ship.ShipPlan):
        if json_out:
            common.emit_json(out.as_dict())
        else:
            common.emit("\n".join(out.describe()))
        return
    d = out.as_dict()
    if json_out:
        common.emit_json(d)
        return
    for r in d["shipped"]:
        how = "full" if r["parent"] is None else f"incremental from {r['parent']}"
        resumed = f", resumed ({r['parts_skipped']} part(s) not sent again)" if r[
            "resumed"] else ""
        common.emit(f"shipped {r['volume']:8s} of {r['manifest']} ({how}): "
                    f"{r['stored_bytes']} bytes stored in {r['seconds']} s{resumed}")
    for mid in d["manifests"]:
        common.emit(f"manifest of {mid} is at {d['target']}")
    for why in d["skipped"]:
        common.emit(f"skipped {why}")
    if not d["shipped"] and not d["manifests"]:
        common.emit(f"nothing to ship: {d['target']} is up to date")


def pull_command(
    ctx: typer.Context,
    target: TargetOpt = None,
    set_id: Annotated[str, typer.Option(
        "--set", help="The set to pull: its id, or 'latest'.")] = "latest",
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """At the standby: bring a set and the newest redolog snapshot after it onto this host's
    volumes, every signature and checksum checked first; then `zmplayredo --set latest`."""
    from standby.transfer import pull

    s = common.settings(ctx)
    t = factory.open_target(target, s)
    t.check(write=False)
    p = pull.plan(t, set_id)
    if dry_run:
        if json_out:
            common.emit_json(p.as_dict())
        else:
            common.emit("\n".join(p.describe()))
        return
    with progress_bar(not json_out) as bar, observe.action(s, "pull"):
        out = pull.pull(s, t, p, progress=bar or (lambda x: None))
    if json_out:
        common.emit_json(out)
        return
    common.emit(f"pulled set {out['set']} (redolog volume as of {out['redolog']}) from "
                f"{out['target']} in {out['seconds']} s")
    st = out.get("stream")
    if st:
        when = f", last commit {st['last_commit']}" if st["last_commit"] else ""
        common.emit(f"stream: {st['segments']} segment(s) applied; the redo log reaches seq "
                    f"{st['seq']} offset {st['offset']}{when}")
        for note in st["notes"]:
            common.emit(f"stream: {note}")
    common.emit(f"next: zmplayredo --set {out['set']} (replays from seq "
                f"{out['replay_from_seq']})")


def verify_command(
    ctx: typer.Context,
    target: TargetOpt = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Check that objects are there with their sizes; do not read them.")]
    = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-read the target's catalog, every object's checksum and every chain; exit 8 on any
    mismatch, naming the object."""
    from standby.transfer import verify

    s = common.settings(ctx)
    t = factory.open_target(target, s)
    t.check(write=False)
    with progress_bar(not json_out) as bar:
        rep = verify.verify(t, deep=not quick, progress=bar or (lambda x: None))
    if json_out:
        common.emit_json(rep.as_dict())
    else:
        common.emit(f"{rep.target}: {rep.sets} set(s), {rep.redolog_snapshots} redolog "
                    f"snapshot(s), {rep.records} volume snapshot(s), {rep.objects} object(s), "
                    f"{rep.stored_bytes} bytes stored, checked in {rep.seconds} s")
        if rep.stream_logs:
            common.emit(f"streamed redo: {rep.stream_logs} log(s), {rep.stream_segments} "
                        "segment(s)")
        for n in rep.notes:
            common.emit(f"note: {n}")
        for prob in rep.problems:
            common.emit(f"problem: {prob}")
        if rep.ok:
            common.emit("everything checks out")
    if not rep.ok:
        raise IntegrityError(f"{len(rep.problems)} problem(s) at {rep.target}",
                             hint="see the problems listed; `standby ship --full` sends "
                                  "damaged snapshots again")


def prune_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Option(
        "--target", help="The target whose snapshots to prune (its URL).")],
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Keep the tiers of the retention section at a target too; a snapshot a kept incremental
    depends on stays (the oldest without dependents goes first)."""
    from standby.transfer import prune

    s = common.settings(ctx)
    t = factory.open_target(target, s)
    res = prune.prune(s, t, dry_run=dry_run)
    if json_out:
        common.emit_json(res.as_dict())
    else:
        p = res.plan
        for mid, why in p.keep.items():
            common.emit(f"keep   {mid}  ({', '.join(why)})")
        for snap, child in p.parents_kept.items():
            common.emit(f"keep   {snap}  (the parent of {child})")
        verb = "would remove" if dry_run or res.note else "removed"
        for mid in p.remove_manifests:
            common.emit(f"{verb} {mid}")
        for vol, mid in p.remove_records:
            common.emit(f"{verb} {vol} of {mid}")
        for key in res.unreferenced:
            common.emit(f"{verb} unreferenced {key}")
        if res.stream:
            common.emit(f"{verb} {len(res.stream)} streamed redo object(s) of logs no kept set "
                        "replays")
        if res.note:
            common.emit(f"note: {res.note}")
        for e in res.errors:
            common.emit(f"error: {e}")
    if res.errors:
        raise ServiceError(f"{len(res.errors)} removal(s) at {res.target} failed",
                           hint="see the errors above; the next prune tries again")
