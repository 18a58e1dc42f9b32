"""`standby redolog ...`: read Zimbra redo logs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from standby.redolog import dump as dumpmod

app = typer.Typer(help="Read and verify Zimbra redo logs.", no_args_is_help=True)


def dump_command(
    paths: list[str],
    quiet: bool,
    no_offset: bool,
    m: str | None,
    show_blob: bool,
    json_out: bool,
    parquet: Path | None,
    since: str | None = None,
    until: str | None = None,
) -> int:
    from standby import timefmt

    opts = dumpmod.DumpOptions(
        quiet=quiet, no_offset=no_offset,
        mailboxes=dumpmod.parse_mailbox_ids(m) if m else None,
        show_blob=show_blob, fmt="json" if json_out else "text",
        since_ms=timefmt.parse(since, option="--since") if since else None,
        until_ms=timefmt.parse(until, option="--until") if until else None)
    return dumpmod.run(paths, opts, sys.stdout, parquet=parquet)


@app.command("dump")
def dump(
    paths: Annotated[list[str], typer.Argument(help="Redo log files or directories.")],
    quiet: Annotated[bool, typer.Option("-q", "--quiet",
                                        help="File names and errors only.")] = False,
    no_offset: Annotated[bool, typer.Option("--no-offset",
                                            help="Hide offsets and sizes.")] = False,
    m: Annotated[str | None, typer.Option(
        "--m", help="Only these mailbox ids (comma or space separated).")] = None,
    show_blob: Annotated[bool, typer.Option("--show-blob", help="Print blobs.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    parquet: Annotated[Path | None, typer.Option(
        "--parquet", help="Also write one row per record to this Parquet file.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only records at or after this time (Zimbra time formats, local).")]
    = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Only records at or before this time.")] = None,
) -> None:
    """Print each record of redo log files (zmredodump). Exit 1 if any record failed to parse."""
    raise typer.Exit(dump_command(paths, quiet, no_offset, m, show_blob, json_out, parquet,
                                  since, until))
