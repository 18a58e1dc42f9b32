"""`standby bench ...`: measured figures (speed is measured here, never asserted in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from standby.cli import common
from standby.errors import UsageError
from standby.replay import DEFAULT_CHUNK_OPS
from standby.store.index import INDEX_MODES

app = typer.Typer(help="Benchmarks: print measured figures; JSON on the last line with --json.",
                  no_args_is_help=True)


@app.command("replay")
def replay(
    ops: Annotated[int, typer.Option(help="Ops in the log to replay.")] = 100_000,
    naive_ops: Annotated[int, typer.Option(
        help="Prefix replayed by the naive engine (at least 50,000, or the whole log).")]
    = 50_000,
    accounts: Annotated[int, typer.Option(help="Accounts in the synthetic log.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the workload.")] = 1,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to create the temporary stores (default: the system temp folder).")]
    = None,
    keep: Annotated[bool, typer.Option(help="Keep the stores for inspection.")] = False,
    batch_ops: Annotated[int, typer.Option(
        help="The fast engine's batch (see `standby replay --help`); memory grows with it.")]
    = DEFAULT_CHUNK_OPS,
    index: Annotated[str, typer.Option(
        "--index", help="now: one-phase replays (documents tokenized inline, as before); "
        "defer: phase one of a failover in every replay, digests compared after the "
        "catch-up.")] = "now",
    mix: Annotated[str, typer.Option(
        help="The log's mix: default (loadgen's) or core (without Zimbra's other mail ops, "
        "the mix older versions wrote).")] = "default",
    json_out: Annotated[bool, typer.Option("--json", help="JSON on the last line.")] = False,
) -> None:
    """Replay N ops from empty with the fast and naive engines, and measure the ceiling."""
    import sys

    from standby.bench import replay as bench_replay

    def say(msg: str) -> None:
        sys.stderr.write(f"bench replay: {msg}\n")
        sys.stderr.flush()

    if ops < 1 or batch_ops < 1:
        raise UsageError("--ops and --batch-ops must be at least 1")
    if index not in INDEX_MODES:
        raise UsageError(f"--index must be now or defer, not {index!r}")
    out = bench_replay.run(ops=ops, workdir=workdir, seed=seed, accounts=accounts,
                           naive_ops=naive_ops, keep=keep, batch_ops=batch_ops,
                           index="defer" if index == "defer" else "now", mix=mix, say=say)
    if json_out:
        common.emit_json(out)
    else:
        for line in figure_lines(out, width=24):
            common.emit(line)


@app.command("failover")
def failover(
    history_ops: Annotated[int, typer.Option(
        help="Ops of history on the primary before its snapshot set.")] = 500_000,
    ops: Annotated[int, typer.Option(help="Ops after the set, replayed by the standby.")]
    = 300_000,
    naive_ops: Annotated[int, typer.Option(
        help="Prefix replayed by the naive engine (at least 50,000, or all).")] = 50_000,
    accounts: Annotated[int, typer.Option(help="Accounts of the mix.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the workload.")] = 1,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to create the temporary stores (default: the system temp folder).")]
    = None,
    keep: Annotated[bool, typer.Option(help="Keep the stores for inspection.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on the last line.")] = False,
) -> None:
    """A primary with history takes a set; the standby restores it and replays what followed:
    mail first (fast engine, --index defer), then the index catch-up; beside it the fast engine
    with --index now, the naive engine, and the machine's ceilings, all in one run."""
    import sys

    from standby.bench import failover as bench_failover

    def say(msg: str) -> None:
        sys.stderr.write(f"bench failover: {msg}\n")
        sys.stderr.flush()

    if history_ops < 1 or ops < 1:
        raise UsageError("--history-ops and --ops must be at least 1")
    out = bench_failover.run(history_ops=history_ops, ops=ops, accounts=accounts, seed=seed,
                             naive_ops=naive_ops, workdir=workdir, keep=keep, say=say)
    if json_out:
        common.emit_json(out)
    else:
        for line in figure_lines(out, width=28):
            common.emit(line)


def figure_lines(out: Mapping[str, Any], *, width: int, prefix: str = "") -> list[str]:
    """A benchmark's figures in words: nested figures as `outer.inner`, yes/no for truths,
    "not measured" for a figure the run could not take."""
    lines: list[str] = []
    for k, v in out.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            lines += figure_lines(v, width=width, prefix=f"{name}.")
        elif isinstance(v, bool):
            lines.append(f"{name:{width}s} {'yes' if v else 'no'}")
        elif v is None:
            lines.append(f"{name:{width}s} not measured")
        elif isinstance(v, list | tuple):
            lines.append(f"{name:{width}s} {', '.join(map(str, v)) or 'none'}")
        else:
            lines.append(f"{name:{width}s} {v}")
    return lines


@app.command("snapshot")
def snapshot(
    stagger: Annotated[float, typer.Option(help="Stagger of the staggered set, seconds.")] = 1.0,
    redologs: Annotated[int, typer.Option(help="Redolog snapshots to time.")] = 10,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to create the pool file and the store (default: the system temp folder).")]
    = None,
    keep: Annotated[bool, typer.Option(help="Keep the work folder (the pool is destroyed).")]
    = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on the last line.")] = False,
) -> None:
    """Wall time and skew of a staggered and an atomic set on ZFS, and per-snapshot overhead."""
    import sys

    from standby.bench import snapshot as bench_snapshot

    def say(msg: str) -> None:
        sys.stderr.write(f"bench snapshot: {msg}\n")
        sys.stderr.flush()

    out = bench_snapshot.run(stagger_s=stagger, redologs=redologs, workdir=workdir, keep=keep,
                             say=say)
    if json_out:
        common.emit_json(out)
    else:
        for k, v in out.items():
            common.emit(f"{k:36s} {v}")


@app.command("store")
def store(
    accounts: Annotated[int, typer.Option(help="Accounts the load is spread over.")] = 20,
    actions: Annotated[int, typer.Option(help="Loadgen actions against the primary.")] = 3000,
    workers: Annotated[int, typer.Option(help="Concurrent loadgen clients.")] = 8,
    reader_records: Annotated[int, typer.Option(
        help="Records in the log the reader decodes.")] = 500_000,
    repeats: Annotated[int, typer.Option(help="Timed decoding passes (best is reported).")]
    = 3,
    seed: Annotated[int, typer.Option(help="Seed of the workload.")] = 1,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to create the temporary store (default: the system temp folder).")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the work folder for inspection.")] = False,
    profile: Annotated[bool, typer.Option(
        help="Also profile one decoding pass (cProfile, top functions by own time).")] = False,
    mix: Annotated[str, typer.Option(
        help="The load's mix: default (loadgen's) or core (without Zimbra's other mail ops, "
        "the mix older versions wrote).")] = "default",
    json_out: Annotated[bool, typer.Option("--json", help="JSON on the last line.")] = False,
) -> None:
    """The primary's sustained throughput under loadgen, and the redo reader's decode rate."""
    import sys

    from standby.bench import store as bench_store

    def say(msg: str) -> None:
        sys.stderr.write(f"bench store: {msg}\n")
        sys.stderr.flush()

    out = bench_store.run(accounts=accounts, actions=actions, workers=workers,
                          reader_records=reader_records, repeats=repeats, seed=seed,
                          workdir=workdir, keep=keep, profile=profile, mix=mix, say=say)
    prof = out.pop("reader_profile", None)
    if prof:
        sys.stderr.write(prof)
    if json_out:
        common.emit_json(out)
    else:
        for k, v in out.items():
            common.emit(f"{k:32s} {v}")


@app.command("classic")
def classic(
    mb: Annotated[int, typer.Option(
        help="Size of the store to back up: MB of mail data (blob, index, redolog volumes).")]
    = 2000,
    accounts: Annotated[int, typer.Option(help="Accounts the data is spread over.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the workload.")] = 1,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to create the stores and the target (default: the system temp folder).")]
    = None,
    keep: Annotated[bool, typer.Option(help="Keep the work folder for inspection.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on the last line.")] = False,
) -> None:
    """Full backup vs tar, incremental of an unchanged store, restore vs untar (same run)."""
    import sys

    from standby.bench import classic as bench_classic

    def say(msg: str) -> None:
        sys.stderr.write(f"bench classic: {msg}\n")
        sys.stderr.flush()

    if mb < 1 or accounts < 1:
        raise UsageError("--mb and --accounts must be at least 1")
    out = bench_classic.run(mb=mb, workdir=workdir, seed=seed, accounts=accounts, keep=keep,
                            say=say)
    if json_out:
        common.emit_json(out)
    else:
        for k, v in out.items():
            common.emit(f"{k:24s} {v}")


@app.command("ship")
def ship(
    size_mb: Annotated[int, typer.Option(help="Size of the snapshot set, MiB.")] = 1024,
    zfs_size_mb: Annotated[int, typer.Option(
        help="Size of the set on zfs volumes for the zfs part (0: skip it), MiB.")] = 1024,
    workdir: Annotated[Path | None, typer.Option(
        help="Where to write the volumes and the snapshot (default: the system temp folder).")]
    = None,
    keep: Annotated[bool, typer.Option(help="Keep the work folder for inspection.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on the last line.")] = False,
) -> None:
    """standby ship vs a plain boto3 upload_file of the same bytes (moto_server), the cost of
    shipping one small redolog increment, and ship to a zfs target vs bare zfs send | recv."""
    import sys

    from standby.bench import ship as bench_ship

    def say(msg: str) -> None:
        sys.stderr.write(f"bench ship: {msg}\n")
        sys.stderr.flush()

    if size_mb < 1 or zfs_size_mb < 0:
        raise UsageError("--size-mb must be at least 1, --zfs-size-mb at least 0")
    out = bench_ship.run(size_mb=size_mb, zfs_size_mb=zfs_size_mb, workdir=workdir, keep=keep,
                         say=say)
    if json_out:
        common.emit_json(out)
    else:
        for k, v in out.items():
            common.emit(f"{k:32s} {v}")
