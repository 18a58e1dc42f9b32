"""`standby store ...`: the reference mailbox store (the primary): init, start, stop, status,
loadgen and digest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from standby.cli import common
from standby.store import control

app = typer.Typer(help="The reference mailbox store that writes the four volumes.",
                  no_args_is_help=True)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to hold the store and its config.")],
    server_id: Annotated[str | None, typer.Option(help="Server id (default: a new UUID).")]
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
    current = ("no readable redo.log yet" if st.redo_seq is None or st.redo_size is None
               else f"sequence {st.redo_seq}, {st.redo_size} bytes")
    common.emit(f"redo log: {current}; {st.archived_logs} archived")


@app.command()
def loadgen(
    ctx: typer.Context,
    accounts: Annotated[int, typer.Option(help="Accounts to create or reuse.")] = 20,
    ops: Annotated[int, typer.Option(help="Actions to perform.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same requests.")] = 1,
    rate: Annotated[float | None, typer.Option(help="Actions per second (default: as fast "
                                                       "as the store allows).")] = None,
    workers: Annotated[int, typer.Option(help="Concurrent clients.")] = 4,
    domain: Annotated[str, typer.Option(help="Domain of the generated accounts.")]
    = "example.com",
    json_out: Annotated[bool, typer.Option("--json", help="JSON summary on the last line.")]
    = False,
) -> None:
    """Drive realistic mail traffic against the running store."""
    import sys

    from standby.store import loadgen as lg

    s = common.settings(ctx)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty and total and done % 50 == 0:
            sys.stderr.write(f"\rloadgen: {done}/{total} actions")
            sys.stderr.flush()

    res = lg.run(s.store_socket, accounts=accounts, ops=ops, seed=seed, workers=workers,
                 rate=rate, domain=domain, progress=progress)
    if tty:
        sys.stderr.write("\n")
    summary = res.summary()
    if json_out:
        common.emit_json(summary)
    else:
        rate = summary["actions_per_s"]
        common.emit(f"{summary['actions']} actions in {summary['seconds']} s"
                    + (f" ({rate} actions/s)" if rate is not None else "")
                    + f", {summary['errors']} errors, {summary['mb_delivered']} MB delivered")
        for k, v in summary["by_type"].items():
            common.emit(f"  {k:24s} {v}")
    if summary["errors"]:
        raise typer.Exit(1)


@app.command()
def digest(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Canonical digest per mailbox and for the whole store (last line), each also per volume
    (db, blob, index). Works on a stopped store by starting its MariaDB read-only for the
    purpose."""
    from standby.store.digest import digest_settings

    d = digest_settings(common.settings(ctx))
    pending = sum(m.pending for m in d.mailboxes)
    if json_out:
        for m in d.mailboxes:
            common.emit_json(m.as_dict())
        common.emit_json({"store": d.total, "volumes": d.volumes, "mailboxes": len(d.mailboxes),
                          "index_pending": pending})
        return
    for m in d.mailboxes:
        common.emit(f"mailbox {m.mailbox_id} {m.account_id} {m.digest} rows={m.rows} "
                    f"blobs={m.blobs} docs={m.docs}" +
                    (f" pending={m.pending}" if m.pending else ""))
    for v, h in d.volumes.items():
        common.emit(f"volume {v} {h}")
    if pending:
        common.emit(f"index: {pending} documents still pending (a deferred replay); the index "
                    "digest changes once `standby index catch-up` has run")
    common.emit(f"store {d.total}")
