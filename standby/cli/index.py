"""`standby index ...`: the full-text index after a deferred replay — catch it up, or see what
it still lacks.

Exit codes: 0 nothing left pending; 1 some documents could not be indexed (their blobs are
missing; the summary names them); 2 bad arguments; 5 a replay is running or was interrupted on
these volumes.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from standby.cli import common
from standby.errors import UsageError
from standby.replay import catchup
from standby.store.index import CATCHUP_BATCH
from standby.store.site import Site

app = typer.Typer(help="The full-text index: catch-up after a deferred replay, and its state.",
                  no_args_is_help=True)


@app.command("catch-up")
def catch_up(
    ctx: typer.Context,
    mailbox_id: Annotated[int | None, typer.Option(
        "--mailboxId", help="Only this mailbox (default: every mailbox that is behind).")]
    = None,
    workers: Annotated[int, typer.Option(
        help="Worker processes (default: one per core).")] = 0,
    batch_docs: Annotated[int, typer.Option(
        help="Documents per index transaction (a running store waits at most one batch).")]
    = CATCHUP_BATCH,
    json_out: Annotated[bool, typer.Option("--json", help="JSON summary on the last line.")]
    = False,
) -> None:
    """Index the documents a `--index defer` replay left pending, from the blob volume."""
    if mailbox_id is not None and mailbox_id <= 0:
        raise UsageError("--mailboxId must be a positive mailbox id")
    if workers < 0 or batch_docs < 1:
        raise UsageError("--workers must be 0 (one per core) or more, --batch-docs at least 1")
    site = Site.open(common.settings(ctx))
    tty = sys.stderr.isatty() and not json_out

    def progress(done: int, total: int) -> None:
        if tty:
            sys.stderr.write(f"\rindex catch-up: {done}/{total} mailboxes")
            sys.stderr.flush()

    res = catchup.run(site, mailbox_ids=None if mailbox_id is None else [mailbox_id],
                      workers=workers, batch=batch_docs, progress=progress)
    if tty and res.mailboxes:
        sys.stderr.write("\n")
    d = res.as_dict()
    if json_out:
        common.emit_json(d)
    elif not res.mailboxes and not res.behind:
        common.emit("nothing to catch up: no documents are pending" +
                    (f" in mailbox {mailbox_id}" if mailbox_id is not None else ""))
    else:
        common.emit(f"indexed {res.documents} documents of {res.mailboxes} mailboxes in "
                    f"{d['seconds']} s ({d['docs_per_s']} documents/s, {res.workers} workers)")
        if res.behind:
            common.emit(f"  still pending: {d['documents_pending']} documents in "
                        f"{d['mailboxes_behind']} mailboxes; searches there say the index is "
                        "incomplete")
            for m in res.missing[:10] + res.errors[:10]:
                common.emit(f"  {m}")
        else:
            common.emit("  the index is complete" + ("" if mailbox_id is None
                                                     else f" for mailbox {mailbox_id}"))
    if res.behind:
        raise typer.Exit(1)


@app.command("status")
def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Which mailboxes' indexes are behind, and by how many documents."""
    site = Site.open(common.settings(ctx), writable=False)
    behind = site.index.pending_counts()
    site.close()
    marked = site.index.marked_behind()
    if json_out:
        common.emit_json({"complete": not behind, "marker": marked,
                          "mailboxes_behind": len(behind),
                          "documents_pending": sum(behind.values()),
                          "behind": {str(m): n for m, n in behind.items()}})
        return
    if not behind:
        common.emit("the index is complete: no documents are pending" +
                    (" (the volume's catch-up marker is still there; `standby index catch-up`"
                     " clears it)" if marked else ""))
        return
    common.emit(f"{sum(behind.values())} documents pending in {len(behind)} mailboxes "
                "(`standby index catch-up` indexes them)")
    for m, n in sorted(behind.items(), key=lambda kv: -kv[1])[:20]:
        common.emit(f"  mailbox {m}: {n} documents")
