"""Which accounts an auto-grouped session backs up (the guide's "Backup using the Auto-Grouped
Method"), as a pure function of the accounts, their last full backups and the clock.

With T accounts and N groups, each session's quota is ceil(T/N). A session takes, in order:

1. every account never backed up (newly provisioned);
2. every account not backed up within the last N - 1/2 intervals, oldest first: it would miss
   its turn otherwise. (The guide: "if backups are scheduled to run over six days, mailboxes
   that have not been backed up in the past 5 days are backed up". Half an interval of slack
   keeps a session that starts a little late or early from pulling an account a day forward.)
3. more accounts, the oldest backup first, until the session has its quota, so the load is
   balanced at about one N-th of the accounts per session.

Throttled (`zimbraBackupAutoGroupedThrottled TRUE`), the session stops at its quota whatever 1
and 2 ask for: T/N per session at most, even right after a mass migration, at the cost of the
N-interval guarantee until every account has been backed up once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    zimbra_id: str
    last_full_ms: int | None = None  # None: never backed up


@dataclass(frozen=True)
class GroupPlan:
    accounts: tuple[str, ...]  # in the order they are backed up
    new: int
    due: int
    quota: int
    throttled: bool


def quota(total: int, groups: int) -> int:
    return -(-total // groups) if total else 0


def plan(candidates: Iterable[Candidate], *, now_ms: int, interval_ms: int, groups: int,
         throttled: bool = False) -> GroupPlan:
    cands = sorted(candidates, key=lambda c: c.zimbra_id)
    if groups < 1 or interval_ms < 1:
        raise ValueError("groups and interval must be positive")
    q = quota(len(cands), groups)
    window = (2 * groups - 1) * interval_ms // 2
    new = [c.zimbra_id for c in cands if c.last_full_ms is None]
    backed = sorted((c for c in cands if c.last_full_ms is not None),
                    key=lambda c: (c.last_full_ms, c.zimbra_id))
    due = [c.zimbra_id for c in backed if now_ms - (c.last_full_ms or 0) >= window]
    due_set = set(due)
    rest = [c.zimbra_id for c in backed if c.zimbra_id not in due_set]
    if throttled:
        chosen = (new + due + rest)[:q]
    else:
        chosen = new + due
        if len(chosen) < q:
            chosen += rest[:q - len(chosen)]
    return GroupPlan(tuple(chosen), len(new), len(due), q, throttled)
