"""Auto-grouped account selection over simulated days (injected clock), accounts added and
removed: every account backed up at least once per N intervals, each session's count within
the guide's balance, throttling at T/N."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from standby.classic import autogroup
from standby.classic.autogroup import Candidate

DAY = 86_400_000


@st.composite
def simulations(draw: st.DrawFn) -> dict:
    groups = draw(st.integers(1, 9))
    start = draw(st.integers(0, 60))
    days = draw(st.integers(groups * 2, groups * 5))
    # Per day: accounts to add and how many to remove (a share of those present).
    changes = draw(st.lists(st.tuples(st.integers(0, 12), st.floats(0, 0.3)),
                            min_size=days, max_size=days))
    jitter = draw(st.lists(st.integers(-DAY // 5, DAY // 5), min_size=days, max_size=days))
    stable_tail = draw(st.booleans())
    if stable_tail:  # the last 2N days without additions or removals
        cut = max(0, days - 2 * groups)
        changes = changes[:cut] + [(0, 0.0)] * (days - cut)
    interval = draw(st.sampled_from([DAY, 2 * DAY, 7 * DAY]))
    return {"groups": groups, "start": start, "days": days, "changes": changes,
            "jitter": jitter, "interval": interval}


def simulate(sim: dict, *, throttled: bool) -> list[dict]:
    groups, interval = sim["groups"], sim["interval"]
    last: dict[str, int | None] = {f"a{i:04d}": None for i in range(sim["start"])}
    sessions_since: dict[str, int] = {}
    next_id = sim["start"]
    out = []
    for day in range(sim["days"]):
        add, share = sim["changes"][day]
        present = sorted(last)
        for a in present[:int(len(present) * share)]:
            del last[a]
            sessions_since.pop(a, None)
        new_ids = []
        for _ in range(add):
            a = f"a{next_id:04d}"
            next_id += 1
            last[a] = None
            new_ids.append(a)
        now = 10 * interval + day * interval + sim["jitter"][day]
        p = autogroup.plan([Candidate(a, t) for a, t in last.items()], now_ms=now,
                           interval_ms=interval, groups=groups, throttled=throttled)
        never = {a for a, t in last.items() if t is None}
        for a in last:
            sessions_since[a] = sessions_since.get(a, 0) + 1
        for a in p.accounts:
            assert a in last
            sessions_since[a] = 0
            last[a] = now
        out.append({"plan": p, "total": len(last), "never": never, "added": add,
                    "max_wait": max(sessions_since.values(), default=0),
                    "changed": add > 0 or share > 0 and len(present) * share >= 1})
    return out


@settings(max_examples=150, deadline=None)
@given(simulations())
def test_unthrottled_every_account_within_n_intervals_and_balanced(sim: dict) -> None:
    groups = sim["groups"]
    days = simulate(sim, throttled=False)
    stable = 0
    for i, d in enumerate(days):
        p = d["plan"]
        q = autogroup.quota(d["total"], groups)
        assert len(set(p.accounts)) == len(p.accounts)
        # Every account not taken now was backed up within the last N-1 sessions, so none
        # waits more than N sessions for its next backup.
        assert d["max_wait"] <= groups - 1
        # Every never-backed-up account is taken at once.
        assert d["never"] <= set(p.accounts)
        # At least the quota, and beyond it only new and due accounts.
        assert len(p.accounts) >= min(q, d["total"])
        assert len(p.accounts) <= max(q, p.new + p.due)
        stable = stable + 1 if not d["changed"] else 0
        # The account set unchanged for 2N sessions: exactly one N-th of it per session.
        if stable >= 2 * groups and i >= 2 * groups:
            assert len(p.accounts) == q, (i, len(p.accounts), q)


@settings(max_examples=150, deadline=None)
@given(simulations())
def test_throttled_never_more_than_t_over_n(sim: dict) -> None:
    groups = sim["groups"]
    for d in simulate(sim, throttled=True):
        p = d["plan"]
        q = autogroup.quota(d["total"], groups)
        assert len(p.accounts) <= q
        assert len(p.accounts) == min(q, d["total"])
        # Never-backed-up accounts come first.
        firsts = p.accounts[:min(len(d["never"]), q)]
        assert set(firsts) <= d["never"]


def test_guide_example_seven_daily_groups() -> None:
    """The guide: 1d, 7 groups — the first session takes everyone, then about a seventh a day,
    the oldest first, newly provisioned accounts at once."""
    accts = {f"u{i:02d}": None for i in range(70)}
    now = 100 * DAY
    p = autogroup.plan([Candidate(a, t) for a, t in accts.items()], now_ms=now,
                       interval_ms=DAY, groups=7)
    assert len(p.accounts) == 70
    for a in accts:
        accts[a] = now
    accts["u00"] = now - 3 * DAY  # an older backup is picked first
    accts["new1"] = None
    p = autogroup.plan([Candidate(a, t) for a, t in accts.items()], now_ms=now + DAY,
                       interval_ms=DAY, groups=7)
    assert p.accounts[0] == "new1" and p.accounts[1] == "u00"
    assert len(p.accounts) == autogroup.quota(71, 7) == 11
