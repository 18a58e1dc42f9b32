"""Target retention never leaves an incremental without its parent (Hypothesis over random
chains and tiers), and `standby prune --target` applies it at a real target."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from standby.snapshot.prune import plan_chains
from standby.snapshot.retention import RetentionItem, RetentionPolicy, plan_retention

HOUR = 3_600_000
VOLS = ("db", "blob", "index", "redolog")


@st.composite
def targets(draw: st.DrawFn) -> tuple[list[RetentionItem], dict, list[str], dict[str, int]]:
    n = draw(st.integers(1, 14))
    times = sorted(draw(st.lists(st.integers(0, 2000 * HOUR), min_size=n, max_size=n,
                                 unique=True)))
    records: dict[tuple[str, str], str | None] = {}
    items: list[RetentionItem] = []
    pending: list[str] = []
    age: dict[str, int] = {}
    last: dict[str, str] = {}
    for i, t in enumerate(times):
        kind = draw(st.sampled_from(["set", "redolog"]))
        mid = f"{kind}-{i:03d}"
        age[mid] = t
        for vol in (VOLS if kind == "set" else ("redolog",)):
            older = sorted(m for (v, m) in records if v == vol)
            parent = draw(st.one_of(st.none(), st.sampled_from(older))) if older else None
            records[(vol, mid)] = parent
        fate = draw(st.sampled_from(["manifest", "manifest", "manifest", "pending", "orphan"]))
        if fate == "manifest":
            items.append(RetentionItem(mid, kind, t, True, kind, last.get(kind)))
            last[kind] = mid
        elif fate == "pending":
            pending.append(mid)
    return items, records, pending, age


policies = st.builds(RetentionPolicy, hourly=st.integers(0, 3), daily=st.integers(0, 3),
                     weekly=st.integers(0, 2), monthly=st.integers(0, 2),
                     redolog_keep=st.integers(0, 3))


@settings(max_examples=400, deadline=None)
@given(t=targets(), policy=policies, later=st.integers(0, 500 * HOUR))
def test_no_incremental_ever_loses_its_parent(t: tuple, policy: RetentionPolicy,
                                             later: int) -> None:
    items, records, pending, age = t
    now = max(age.values()) + later
    p = plan_chains(items, records, policy, now, age=age, pending=pending)
    tiers = plan_retention(items, policy, now)
    assert set(p.keep) == set(tiers.keep) and set(p.remove_manifests) == set(tiers.prune)
    left = dict(records)
    for vol, mid in p.remove_records:
        assert (vol, mid) in left
        dependents = [k for k, parent in left.items() if k[0] == vol and parent == mid]
        assert not dependents, f"{mid}/{vol} removed while {dependents} depend on it"
        del left[(vol, mid)]
    for (vol, _mid), parent in left.items():
        assert parent is None or (vol, parent) in left
    for mid in [*p.keep, *pending]:
        for (vol, m) in records:
            if m == mid:
                assert (vol, m) in left, f"{m}/{vol} of a kept snapshot was removed"
    # nothing more is kept than the kept snapshots and their ancestors
    needed = set()
    for (vol, m) in records:
        if m in p.keep or m in pending:
            k: tuple[str, str] | None = (vol, m)
            while k is not None and k not in needed:
                needed.add(k)
                parent = records[k]
                k = (vol, parent) if parent is not None else None
    assert set(left) == needed
    # the oldest removable goes first
    ages = [age[m] for _v, m in p.remove_records]
    if len(set(records.values()) - {None}) == 0:
        assert ages == sorted(ages)
