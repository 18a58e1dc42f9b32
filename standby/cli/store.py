"""`standby store ...`: the reference mailbox store (the primary): init, start, stop, status,
loadgen and digest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from standby.cli import common
from standby.store import control

app = typer.Typer(help="The reference mailbox store that writes the four volumes.",
                  no_args_is_help=True)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to hold the store and its config.")],
    server_id: Annotated[Optional[str], typer.Option(help="Server id (default: a new UUID).")]
    = None,
    mailbox_groups: Annotated[int, typer.Option(
        help="Number of mboxgroupN databases (Zimbra's default is 100).")] = 100,
    force: Annotated[bool, typer.Option(help="Overwrite an existing standby.toml.")] = False,
) -> None:
    """Write DIR/standby.toml with embedded defaults and create the four volume folders."""
    cfg = control.init(directory, server_id=server_id, mailbox_groups=mailbox_groups,
                       force=force)
    common.emit(str(cfg))


@app.command()
def start(ctx: typer.Context,
          json_out: Annotated[bool, typer.Option("--json", help="JSON status.")] = False) -> None:
    """Start the private MariaDB and the store service in the background (crash recovery runs
    first if the last run did not stop cleanly)."""
    st = control.start(common.settings(ctx))
    if json_out:
        common.emit_json(st.as_dict())
    else:
        common.emit(f"store started: service pid {st.service_pid}, mariadb pid {st.mariadb_pid}")


@app.command()
def stop(
    ctx: typer.Context,
    service_only: Annotated[bool, typer.Option(
        "--service-only", help="Stop the store service but leave MariaDB running.")] = False,
) -> None:
    """Stop the store service (clean shutdown, log rolled over) and MariaDB."""
    done = control.stop(common.settings(ctx), service_only=service_only)
    common.emit("stopped: " + ", ".join(k for k, v in done.items() if v) if any(done.values())
                else "nothing was running")


@app.command()
def status(ctx: typer.Context,
           json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """Show whether the store's processes run, and the redo log position."""
    st = control.status(common.settings(ctx))
    if json_out:
        common.emit_json(st.as_dict())
        return
    common.emit(f"mariadb:  {'running, pid %d' % st.mariadb_pid if st.mariadb_pid else 'stopped'}")
    svc = "stopped"
    if st.service_pid:
        svc = f"running, pid {st.service_pid}" + ("" if st.service_answering else
                                                   " (not answering)")
    common.emit(f"service:  {svc}")
    common.emit(f"redo log: sequence {st.redo_seq}, {st.redo_size} bytes; "
                f"{st.archived_logs} archived")
