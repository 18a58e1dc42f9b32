"""`standby stream [--target URL]`: follow redo.log and ship it as it grows, until stopped.

Runs in the foreground (a systemd service, or `--once` from a test or cron); SIGTERM and SIGINT
stop it between two rounds. Every ten seconds the journal notes the stream as alive and the
metrics textfile is refreshed. Exit codes: 0 stopped; 2 a target that cannot take a stream
(zfs://, btrfs://); 3 configuration; 7 the target refused the first listing; 8 the target holds
segments that are not this log's.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from standby import observe, timefmt
from standby.cli import common
from standby.status import journal
from standby.transfer import factory
from standby.transfer.stream import Streamer
from standby.transfer.stream_state import StreamPosition

HEARTBEAT_MS = 10_000


def stream_command(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option(
        "--target", help="Target URL, s3:// or file:// (default: stream.target, else "
        "target.url).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="One round (spool what is new, send the spool), then exit.")] = False,
) -> None:
    """Ship the redo log as the store appends to it: a segment every stream.interval_ms (or at
    stream.max_bytes), buffered locally while the target is away, never a torn record."""
    s = common.settings(ctx)
    t = factory.open_target(target or s.stream.target, s)
    t.check(write=True)
    last = [0]

    def beat(p: StreamPosition) -> None:
        now = timefmt.now_ms()
        if now - last[0] < HEARTBEAT_MS:
            return
        last[0] = now
        if p.error is None:
            journal.record(s.state_dir, "stream", ok=True, at_ms=now)
        else:
            journal.record(s.state_dir, "stream", ok=False, at_ms=now, error=p.error)
        observe.after(s, now)

    st = Streamer(s, t, heartbeat=beat)
    if once:
        st.start()
        st.step()
        p = st.pos
        common.emit(f"stream to {p.target}: at seq {p.seq} offset {p.offset}, "
                    f"{p.segments} segment(s) sent, {p.buffered_bytes} bytes buffered")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    p = st.run(stop)
    common.emit(f"stream stopped at seq {p.seq} offset {p.offset} ({p.segments} segment(s))")
