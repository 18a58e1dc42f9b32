"""`standby bench ...`: measured figures (speed is measured here, never asserted in tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from standby.cli import common

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
    workdir: Annotated[Optional[Path], typer.Option(
        help="Where to create the temporary stores (default: the system temp folder).")]
    = None,
    keep: Annotated[bool, typer.Option(help="Keep the stores for inspection.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on the last line.")] = False,
) -> None:
    """Replay N ops from empty with the fast and naive engines, and measure the ceiling."""
    import sys

    from standby.bench import replay as bench_replay

    def say(msg: str) -> None:
        sys.stderr.write(f"bench replay: {msg}\n")
        sys.stderr.flush()

    out = bench_replay.run(ops=ops, workdir=workdir, seed=seed, accounts=accounts,
                           naive_ops=naive_ops, keep=keep, say=say)
    if json_out:
        common.emit_json(out)
    else:
        for k, v in out.items():
            common.emit(f"{k:24s} {v}")
