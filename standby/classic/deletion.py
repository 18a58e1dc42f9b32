"""`zmbackup -del`: which sessions and redo logs go, and what `accounts.xml` becomes (pure).

By label: that session and every session before it. By date: every session that started before
it. By age (`7d`, `1m`, `1y`): every session older than that. A running session is never
deleted; an interrupted one in `sessions_tmp/` is, once it is old enough. Redo logs under
`redologs/` go when no remaining session can need them: below the lowest redo sequence a
remaining session started at. `accounts.xml` keeps, for each account, its latest remaining full
backup, and drops accounts no remaining session holds.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from standby.classic.labels import DeleteSpec, Label
from standby.classic.target import SessionInfo, Target
from standby.classic.xmlfiles import AccountEntry
from standby.errors import NotFound
from standby.redolog import files


@dataclass(frozen=True)
class DeletePlan:
    sessions: tuple[SessionInfo, ...]
    redologs: tuple[tuple[int, str], ...]  # (seq, file name) under redologs/
    accounts: tuple[AccountEntry, ...]  # the new accounts.xml

    def as_dict(self) -> dict[str, object]:
        return {"sessions": [str(s.label) for s in self.sessions],
                "redologs": [name for _, name in self.redologs],
                "accounts": len(self.accounts)}


def plan(sessions: Sequence[SessionInfo], spec: DeleteSpec, *, now_ms: int,
         redologs: Sequence[tuple[int, str]]) -> DeletePlan:
    cut: Label | None = spec.label
    if cut is not None and cut not in {s.label for s in sessions}:
        raise NotFound(f"no backup session labelled {cut}",
                       hint="`zmbackupquery` lists the sessions of the target")
    cutoff = spec.cutoff(now_ms)

    def goes(lb: Label) -> bool:
        return lb <= cut if cut is not None else lb.ms < cutoff

    doomed = tuple(s for s in sessions if goes(s.label) and not s.running)
    gone = {s.label for s in doomed}
    remaining = [s for s in sessions if s.label not in gone]
    starts = [s.record.min_redo_seq for s in remaining
              if s.record is not None and s.record.min_redo_seq is not None]
    logs: tuple[tuple[int, str], ...] = ()
    if not any(s.running for s in remaining):  # a running session may still need any of them
        floor = min(starts) - 1 if starts else None
        logs = tuple((seq, name) for seq, name in sorted(redologs)
                     if floor is None or seq < floor)
    return DeletePlan(doomed, logs, latest_fulls(remaining))


def latest_fulls(sessions: Sequence[SessionInfo]) -> tuple[AccountEntry, ...]:
    """accounts.xml for these sessions: each account's latest full backup that completed."""
    latest: dict[str, AccountEntry] = {}
    for s in sorted(sessions, key=lambda s: s.label):
        rec = s.record
        if rec is None or not s.finished:
            continue
        for a in rec.accounts:
            prev = latest.get(a.zimbra_id)
            full = str(s.label) if rec.type == "full" and a.status == "COMPLETED" else None
            label = full or (prev.latest_full if prev else None)
            latest[a.zimbra_id] = AccountEntry(a.zimbra_id, a.email, label)
    return tuple(sorted((e for e in latest.values() if e.latest_full is not None),
                        key=lambda e: e.email))


def execute(target: Target, p: DeletePlan) -> None:
    """Carry out a deletion plan under the target's lock: sessions, then redo logs, then the new
    accounts.xml (so a crash half-way leaves an accounts.xml naming sessions still there)."""
    with target.locked():
        target.write_accounts(list(p.accounts))
        for s in p.sessions:
            shutil.rmtree(s.path, ignore_errors=True)
        for _seq, name in p.redologs:
            (target.redologs_dir / name).unlink(missing_ok=True)


def redologs_of(target: Target) -> list[tuple[int, str]]:
    return [(lf.seq, lf.path.name) for lf in files.list_archive(target.redologs_dir)]
