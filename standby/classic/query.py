"""`zmbackupquery`: selecting sessions and printing them as Zimbra does (pure over records).

Selection: `-lb LABEL` one session; `--type full|incremental`; `--from`/`--to` a window on the
start time; `-a ACCOUNT` the sessions holding that account (its history, to find the best point
to restore to). Output per session:

    Label:   full-20210712.155951.123
    Type:    full
    Status:  completed
    Started: Mon, 2021/07/12 15:59:51.123 GMT
    Ended:   Mon, 2021/07/12 16:00:12.456 GMT
    Redo log sequence range: 12 .. 14
    Number of accounts: 3

then, with `-v`, each account and its status; errors if any; and at the end the target's
`Total space:` and `Free space:` in MB. Status is `in progress`, `completed`,
`completed (aborted by command)`, `completed (with errors)`, or, for a session a crash left in
`sessions_tmp/`, `missing, incomplete, or invalid`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from standby.classic.labels import Label
from standby.classic.target import INTERRUPTED, SessionInfo
from standby.errors import NotFound, UsageError

TYPES = ("full", "incremental")


def zimbra_time(ms: int) -> str:
    """`EEE, yyyy/MM/dd HH:mm:ss.SSS z` in local time, as Zimbra's backup tools print times."""
    t = time.localtime(ms / 1000)
    return (time.strftime("%a, %Y/%m/%d %H:%M:%S", t) + f".{ms % 1000:03d} "
            + time.strftime("%Z", t))


@dataclass(frozen=True)
class Query:
    label: Label | None = None
    type: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    account: str | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in TYPES:
            raise UsageError(f"--type {self.type!r}: use full or incremental")
        if self.from_ms is not None and self.to_ms is not None and self.from_ms > self.to_ms:
            raise UsageError("--from is later than --to")


def display_status(info: SessionInfo) -> str:
    if info.running:
        return "in progress"
    rec = info.record
    if not info.finished or rec is None:
        return INTERRUPTED
    if rec.status == "aborted":
        return "completed (aborted by command)"
    if rec.status == "failed":
        return "failed"
    if rec.errors or any(a.status == "ERROR" for a in rec.accounts):
        return "completed (with errors)"
    return "completed"


def _holds(info: SessionInfo, account: str) -> bool:
    rec = info.record
    a = account.lower()
    return rec is not None and any(x.email == a or x.zimbra_id == account for x in rec.accounts)


def select(sessions: Sequence[SessionInfo], q: Query) -> list[SessionInfo]:
    out = []
    for s in sessions:
        if q.label is not None and s.label != q.label:
            continue
        if q.type is not None and s.label.type != q.type:
            continue
        if q.from_ms is not None and s.label.ms < q.from_ms:
            continue
        if q.to_ms is not None and s.label.ms > q.to_ms:
            continue
        if q.account is not None and not _holds(s, q.account):
            continue
        out.append(s)
    if q.label is not None and not out:
        raise NotFound(f"no backup session labelled {q.label}",
                       hint="`zmbackupquery` without -lb lists the sessions of the target")
    return out


def describe(info: SessionInfo, *, verbose: bool = False, account: str | None = None,
             size_bytes: int | None = None) -> list[str]:
    rec = info.record
    lines = [f"Label:   {info.label}", f"Type:    {info.label.type}",
             f"Status:  {display_status(info)}", f"Started: {zimbra_time(info.label.ms)}"]
    if rec is not None and rec.end_ms is not None:
        lines.append(f"Ended:   {zimbra_time(rec.end_ms)}")
    if rec is not None and rec.min_redo_seq is not None:
        hi = rec.max_redo_seq if rec.max_redo_seq is not None else rec.min_redo_seq
        lines.append(f"Redo log sequence range: {rec.min_redo_seq} .. {hi}")
    if rec is not None:
        done = sum(a.status == "COMPLETED" for a in rec.accounts)
        errs = sum(a.status == "ERROR" for a in rec.accounts)
        lines.append(f"Number of accounts: {len(rec.accounts)}")
        if done != len(rec.accounts):
            lines.append(f"  completed: {done}, with errors: {errs}, "
                         f"not backed up: {len(rec.accounts) - done - errs}")
        if size_bytes is not None:
            lines.append(f"Size:    {size_bytes / 1048576:.2f} MB")
        for a in rec.accounts:
            if verbose or (account is not None and (a.email == account.lower()
                                                    or a.zimbra_id == account)):
                status = a.status.lower().replace("notstarted", "not started")
                lines.append(f"  {a.email}: {status}" + (f" ({a.error})" if a.error else ""))
        for e in rec.errors:
            lines.append(f"Error:   {e}")
    return lines


def space_lines(free: int, total: int) -> list[str]:
    return [f"Total space: {total // 1048576}MB", f"Free space: {free // 1048576}MB"]


def as_dict(info: SessionInfo) -> dict[str, object]:
    rec = info.record
    d: dict[str, object] = {"label": str(info.label), "type": info.label.type,
                            "status": display_status(info), "started_ms": info.label.ms,
                            "path": str(info.path)}
    if rec is not None:
        d.update({"ended_ms": rec.end_ms, "min_redo_seq": rec.min_redo_seq,
                  "max_redo_seq": rec.max_redo_seq, "errors": list(rec.errors),
                  "accounts": [{"name": a.email, "zimbraId": a.zimbra_id,
                                "status": a.status, "error": a.error} for a in rec.accounts],
                  "stats": dict(rec.stats)})
    return d
