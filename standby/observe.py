"""What happens after every action: the journal notes it, the metrics textfile is rewritten,
and a failure is mailed.

    with observe.action(settings, "ship") as out:
        res = ship(...)
        out.detail = {...}; out.add = {"ship_bytes": n}

On success the journal records the action's time and detail (and adds `add` to its totals);
on a `StandbyError` it records the failure, the failure is mailed when `[notify]` says so, and
the error goes on to the CLI's edge unchanged. Either way the textfile is refreshed when
`[metrics] textfile` is set. Nothing here may turn a success into a failure: a textfile or a
mail that cannot be written is logged, never raised (the action itself did succeed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from standby import log as slog
from standby import metrics, timefmt
from standby import notify as notify_mod
from standby.errors import StandbyError
from standby.settings import Settings
from standby.status import gather, journal, monitor


@dataclass
class Outcome:
    detail: dict[str, Any] = field(default_factory=dict)
    add: dict[str, int] = field(default_factory=dict)


Notifier = Callable[[Settings, str, str, str], object]  # (settings, event, subject, body)


@contextmanager
def action(s: Settings, name: str, *, volume: str | None = None,
           now_ms: Callable[[], int] = timefmt.now_ms,
           notify: Notifier | None = None) -> Iterator[Outcome]:
    out = Outcome()
    mail = notify if notify is not None else notify_mod.send_event
    try:
        yield out
    except StandbyError as e:
        at = now_ms()
        journal.record(s.state_dir, name, ok=False, at_ms=at, volume=volume, error=str(e),
                       detail=out.detail or None)
        body = (f"standby {name} failed at {timefmt.gmt_stamp(at)} GMT on server "
                f"{s.server_id}:\n\n  {e}\n")
        _quietly(lambda: mail(s, "failure", f"{name} failed on {s.server_id}", body),
                 "notify_failed")
        after(s, now_ms())
        raise
    journal.record(s.state_dir, name, ok=True, at_ms=now_ms(), volume=volume,
                   detail=out.detail or None, add=out.add)
    after(s, now_ms())


def after(s: Settings, now_ms: int) -> None:
    """Refresh the metrics textfile (when one is configured) and mail a change of the
    monitor's verdict (when `[notify]` asks for `overdue`), never raising."""
    _quietly(lambda: metrics.refresh(s, now_ms), "metrics_textfile_failed")
    if s.notify.smtp_host is not None and "overdue" in s.notify.events:
        _quietly(lambda: notify_mod.overdue(
            s, monitor.evaluate(gather.status(s, now_ms), s.monitor), now_ms=lambda: now_ms),
            "notify_failed")


def _quietly(fn: Callable[[], object], event: str) -> None:
    try:
        fn()
    except (StandbyError, OSError) as e:
        slog.get("standby.observe").warning(event, error=str(e))
