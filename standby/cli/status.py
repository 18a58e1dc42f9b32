"""`standby status [--json] [--monitor]` and `standby metrics [--textfile PATH]`.

Exit codes: with `--monitor`, 0 OK, 1 WARNING, 2 CRITICAL (Nagios), against `[monitor]` (and a
change of verdict is mailed when `[notify]` asks for `overdue`); without, 0, or the code of a
configuration or data error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from standby import metrics, notify, timefmt
from standby.cli import common
from standby.status import gather, monitor, report


def status_command(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option(
        "--target", help="The target whose shipped state to show (default: stream.target, "
        "else target.url, else what every target holds).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="The status as JSON.")] = False,
    monitor_: Annotated[bool, typer.Option(
        "--monitor", help="One Nagios-style line; exit 0 OK, 1 WARNING, 2 CRITICAL.")] = False,
) -> None:
    """Per volume the last snapshot and the last shipped one with their ages, the last set's
    skew, the stream's lag, unshipped bytes, the RPO right now and the last drill's result."""
    s = common.settings(ctx)
    st = gather.status(s, timefmt.now_ms(), target=target)
    if monitor_:
        v = monitor.evaluate(st, s.monitor)
        notify.overdue(s, v)
        if json_out:
            common.emit_json({"state": v.name, "line": v.line,
                              "findings": [{"check": f.check, "state": monitor.NAMES[f.state],
                                            "reason": f.reason} for f in v.findings]})
        else:
            common.emit(v.line)
        raise typer.Exit(v.state)
    if json_out:
        common.emit_json(st.as_dict())
    else:
        common.emit("\n".join(report.lines(st)))


def metrics_command(
    ctx: typer.Context,
    textfile: Annotated[Path | None, typer.Option(
        "--textfile", help="Write the Prometheus textfile here, atomically (default: "
        "metrics.textfile; with neither, print it).")] = None,
) -> None:
    """The Prometheus textfile for node_exporter's textfile collector: last success per action
    and volume, RPO, stream lag, bytes shipped, replay rate, the last drill."""
    s = common.settings(ctx)
    now = timefmt.now_ms()
    path = textfile or s.metrics.textfile
    if path is None:
        common.emit(metrics.collect(s, now))
        return
    metrics.refresh(s, now, path=path)
    common.emit(f"wrote {path}")
