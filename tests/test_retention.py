"""Retention planner: an independent brute-force model of the tiers and holds, Hypothesis over
random histories and clocks, and table-driven examples."""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.errors import ConfigError, FormatError, UsageError
from standby.snapshot.retention import (
    RetentionItem,
    RetentionPlan,
    RetentionPolicy,
    plan_retention,
)

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch ms of a GMT date-time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


# ---------------------------------------------------------------------------------------------
# The model: written from the docstring, sharing no code with the planner.


def _tm(t: int) -> time.struct_time:
    return time.gmtime(t // 1000)


def _model_keys(t: int, tier: str) -> tuple[int, ...]:
    g = _tm(t)
    if tier == "hourly":
        return (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour)
    if tier == "daily":
        return (g.tm_year, g.tm_mon, g.tm_mday)
    if tier == "weekly":
        iso = date(g.tm_year, g.tm_mon, g.tm_mday).isocalendar()
        return (iso[0], iso[1])
    return (g.tm_year, g.tm_mon)


def model_keep(items: Sequence[RetentionItem], policy: RetentionPolicy, now: int) -> set[str]:
    keep: set[str] = set()
    by_id = {i.id: i for i in items}
    def newest(xs: Sequence[RetentionItem]) -> RetentionItem:
        return max(xs, key=lambda i: (i.taken_at_ms, i.id))

    sets = [i for i in items if i.kind == "set" and i.taken_at_ms <= now]
    if sets:
        keep.add(newest(sets).id)
    for tier in ("hourly", "daily", "weekly", "monthly"):
        n = getattr(policy, tier)
        keys = sorted({_model_keys(i.taken_at_ms, tier) for i in sets}, reverse=True)[:n]
        for k in keys:
            keep.add(newest([i for i in sets if _model_keys(i.taken_at_ms, tier) == k]).id)
    redo = sorted((i for i in items if i.kind == "redolog" and i.taken_at_ms <= now),
                  key=lambda i: (i.taken_at_ms, i.id), reverse=True)
    keep.update(i.id for i in redo[: policy.redolog_keep])
    if policy.redolog_max_age_s is not None:
        keep.update(i.id for i in redo if now - i.taken_at_ms < policy.redolog_max_age_s * 1000)
    keep.update(i.id for i in items if i.taken_at_ms > now)
    keep.update(needed_by_unshipped(items))
    for vol in {i.volume for i in items}:
        shipped = [i for i in items if i.volume == vol and i.shipped]
        if shipped:
            keep.add(newest(shipped).id)
        present = [i for i in shipped if i.taken_at_ms <= now]
        if present:
            keep.add(newest(present).id)
    assert keep <= set(by_id)
    return keep


def needed_by_unshipped(items: Sequence[RetentionItem]) -> set[str]:
    """Every unshipped snapshot and its parent chain up to and including the first shipped
    ancestor, walked explicitly."""
    by_id = {i.id: i for i in items}
    need: set[str] = set()
    for item in items:
        if item.shipped:
            continue
        need.add(item.id)
        seen = {item.id}
        cur = by_id.get(item.parent) if item.parent else None
        while cur is not None and cur.id not in seen:
            need.add(cur.id)
            seen.add(cur.id)
            if cur.shipped:
                break
            cur = by_id.get(cur.parent) if cur.parent else None
    return need


# ---------------------------------------------------------------------------------------------
# Strategies

BASE = ms(2024, 1, 1)


@st.composite
def histories(draw: st.DrawFn) -> list[RetentionItem]:
    n = draw(st.integers(0, 60))
    # Quarter-hour slots over ~7 months plus jitter: dense enough for bucket collisions, spread
    # enough to cross days, ISO weeks and months.
    slots = draw(st.lists(st.integers(0, 210 * 24 * 4), min_size=n, max_size=n))
    items: list[RetentionItem] = []
    for idx, slot in enumerate(slots):
        kind = draw(st.sampled_from(["set", "set", "redolog"]))
        t = BASE + slot * 15 * MIN + draw(st.integers(0, 15 * MIN - 1))
        earlier = [i.id for i in items if i.kind == kind]
        parent = draw(st.one_of(st.none(), st.just(f"gone-{idx}"),
                                st.sampled_from(earlier) if earlier else st.none()))
        items.append(RetentionItem(id=f"{kind}-{idx}", kind=kind, taken_at_ms=t,
                                   shipped=draw(st.booleans()), volume=kind, parent=parent))
    return items


policies = st.builds(
    RetentionPolicy,
    hourly=st.integers(0, 60), daily=st.integers(0, 20), weekly=st.integers(0, 10),
    monthly=st.integers(0, 8), redolog_keep=st.integers(0, 20),
    redolog_max_age_s=st.one_of(st.none(), st.integers(1, 30 * 86400)),
)
clocks = st.integers(BASE - DAY, BASE + 220 * DAY)


# ---------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=400, deadline=None)
@given(histories(), policies, clocks)
def test_plan_matches_the_model_and_keeps_its_invariants(
    items: list[RetentionItem], policy: RetentionPolicy, now: int
) -> None:
    plan = plan_retention(items, policy, now)
    ids = [i.id for i in items]
    kept, pruned = set(plan.keep), set(plan.prune)
    # a partition of the input
    assert kept | pruned == set(ids) and not kept & pruned
    assert len(plan.prune) == len(pruned)
    # the independent model agrees exactly
    assert kept == model_keep(items, policy, now)
    # nothing an unshipped snapshot needs is pruned
    assert needed_by_unshipped(items) <= kept
    # the newest set (future ones included) is always kept
    sets = [i for i in items if i.kind == "set"]
    if sets:
        assert max(sets, key=lambda i: (i.taken_at_ms, i.id)).id in kept
    # prune is oldest first
    by_id = {i.id: i for i in items}
    ages = [(by_id[p].taken_at_ms, p) for p in plan.prune]
    assert ages == sorted(ages)
    # held = kept only by holds, and every kept id has a reason
    for k, reasons in plan.keep.items():
        assert reasons
        assert (k in plan.held) == all(r.startswith("hold: ") for r in reasons)
    assert set(plan.held) <= kept


@settings(max_examples=200, deadline=None)
@given(histories(), policies, clocks, st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_idempotent(
    items: list[RetentionItem], policy: RetentionPolicy, now: int, rnd: object
) -> None:
    plan = plan_retention(items, policy, now)
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    again = plan_retention(shuffled, policy, now)
    assert again == plan
    assert list(again.keep) == list(plan.keep)
    remaining = [i for i in items if i.id in plan.keep]
    replanned = plan_retention(remaining, policy, now)
    assert replanned.prune == ()
    assert replanned.keep == plan.keep


@given(policies)
def test_spec_round_trip(policy: RetentionPolicy) -> None:
    assert RetentionPolicy.parse(policy.to_spec()) == policy


# ---------------------------------------------------------------------------------------------
# Examples


def hourly_sets(start: int, count: int, *, shipped: bool = True) -> list[RetentionItem]:
    return [RetentionItem(f"s{i:04d}", "set", start + i * HOUR, shipped, "set",
                          f"s{i - 1:04d}" if i else None) for i in range(count)]


def test_ten_days_of_hourly_sets_with_48h_14d() -> None:
    items = hourly_sets(ms(2024, 3, 1), 240)  # 2024-03-01 00:00 .. 03-10 23:00
    plan = plan_retention(items, RetentionPolicy.parse("48h 14d"), ms(2024, 3, 11))
    hourly = {f"s{i:04d}" for i in range(192, 240)}
    daily = {f"s{d * 24 + 23:04d}" for d in range(10)}  # the last set of each of the 10 days
    assert set(plan.keep) == hourly | daily
    assert len(plan.keep) == 48 + 8
    assert plan.keep["s0239"] == ("newest", "hourly", "daily",
                                  "hold: base of the next incremental send (set chain)")
    assert plan.keep["s0023"] == ("daily",)
    assert plan.prune[0] == "s0000" and plan.prune[-1] == "s0190"
    assert plan.held == {}


def test_an_outage_does_not_prune_restore_points() -> None:
    # Three days of hourly sets, then the primary is down for a month. Empty hours do not use up
    # slots: the 24 hourly and 3 daily restore points are still there.
    items = hourly_sets(ms(2024, 5, 1), 72)
    plan = plan_retention(items, RetentionPolicy.parse("24h 7d"), ms(2024, 6, 1))
    assert set(plan.keep) == {f"s{i:04d}" for i in range(48, 72)} | {"s0023", "s0047"}


def test_iso_week_and_month_boundaries() -> None:
    sun = RetentionItem("sun", "set", ms(2024, 1, 7, 23, 59), True, "set", None)  # ISO week 1
    mon = RetentionItem("mon", "set", ms(2024, 1, 8, 0, 0), True, "set", None)  # ISO week 2
    plan = plan_retention([sun, mon], RetentionPolicy(0, 0, 2, 0), ms(2024, 2, 1))
    assert plan.keep == {"sun": ("weekly",),
                         "mon": ("newest", "weekly",
                                 "hold: base of the next incremental send (set chain)")}
    jan = RetentionItem("jan", "set", ms(2024, 1, 31, 23, 59, 59), True, "set", None)
    feb = RetentionItem("feb", "set", ms(2024, 2, 1), True, "set", None)
    plan = plan_retention([jan, feb], RetentionPolicy(0, 0, 0, 1), ms(2024, 3, 1))
    assert plan.prune == ("jan",)


def test_unshipped_chain_is_held_back_to_the_newest_shipped_ancestor() -> None:
    t = ms(2024, 1, 1)
    items = [
        RetentionItem("a", "set", t, True, "set", None),
        RetentionItem("b", "set", t + DAY, True, "set", "a"),
        RetentionItem("c", "set", t + 2 * DAY, False, "set", "b"),
        RetentionItem("d", "set", t + 3 * DAY, False, "set", "c"),
    ]
    plan = plan_retention(items, RetentionPolicy(0, 0, 0, 0), t + 4 * DAY)
    assert plan.prune == ("a",)
    assert plan.keep["b"] == ("hold: parent of unshipped c",
                              "hold: base of the next incremental send (set chain)")
    assert plan.held["c"] == "unshipped; parent of unshipped d"
    assert "d" not in plan.held  # the newest set is kept by policy, not only by a hold
    assert plan.keep["d"] == ("newest", "hold: unshipped")


def test_future_snapshots_are_kept_and_do_not_displace_the_tiers() -> None:
    now = ms(2024, 1, 10)
    items = hourly_sets(now - 3 * HOUR, 3) + [
        RetentionItem("skewed", "set", now + 365 * DAY, True, "set", None)]
    plan = plan_retention(items, RetentionPolicy(hourly=1, daily=0, weekly=0, monthly=0), now)
    assert plan.keep["skewed"] == ("hold: taken in the future (clock skew)",
                                   "hold: base of the next incremental send (set chain)")
    assert plan.keep["s0002"][:2] == ("newest", "hourly")
    assert plan.prune == ("s0000", "s0001")


def test_redolog_by_count_and_by_age() -> None:
    now = ms(2024, 1, 2)
    redo = [RetentionItem(f"r{i}", "redolog", now - (10 - i) * 15 * MIN, True, "redolog",
                          f"r{i - 1}" if i else None) for i in range(10)]
    plan = plan_retention(redo, RetentionPolicy(redolog_keep=2), now)
    assert set(plan.keep) == {"r8", "r9"}
    plan = plan_retention(redo, RetentionPolicy(redolog_keep=0, redolog_max_age_s=3600), now)
    # r6 is exactly one hour old: not younger than the limit. r9 is also the shipping base.
    assert set(plan.keep) == {"r7", "r8", "r9"}
    plan = plan_retention(redo, RetentionPolicy(redolog_keep=0), now)
    assert plan.keep == {"r9": ("hold: base of the next incremental send (redolog chain)",)}


def test_bad_input_is_refused() -> None:
    a = RetentionItem("x", "set", 0, True, "set", None)
    with pytest.raises(FormatError, match="appears twice"):
        plan_retention([a, a], RetentionPolicy(), 0)
    with pytest.raises(FormatError, match="unknown kind"):
        plan_retention([RetentionItem("y", "blob", 0, True, "blob", None)], RetentionPolicy(), 0)
    with pytest.raises(ConfigError, match="hourly"):
        RetentionPolicy(hourly=-1)
    with pytest.raises(ConfigError, match="redolog_max_age_s"):
        RetentionPolicy(redolog_max_age_s=0)


def test_empty_history() -> None:
    assert plan_retention([], RetentionPolicy(), 0) == RetentionPlan({}, (), {})


@pytest.mark.parametrize("spec, expected", [
    ("48h 14d 8w 6m", RetentionPolicy(48, 14, 8, 6)),
    ("24H, 7d", RetentionPolicy(24, 7, 0, 0)),
    ("6m redolog:10", RetentionPolicy(0, 0, 0, 6, redolog_keep=10)),
    ("1d redolog:90min redolog:4", RetentionPolicy(0, 1, 0, 0, 4, 5400)),
    ("0h redolog:2w", RetentionPolicy(0, 0, 0, 0, redolog_max_age_s=14 * 86400)),
])
def test_parse_examples(spec: str, expected: RetentionPolicy) -> None:
    assert RetentionPolicy.parse(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("", "is empty"),
    ("48h 12h", "hourly tier is given twice"),
    ("1y", "yearly tier is not supported"),
    ("5x", "unknown unit 'x'"),
    ("-5h", "is not <number>"),
    ("48h14d", "is not <number>"),
    ("redolog:5m", "say 'min'"),
    ("redolog:0h", "more than zero"),
    ("redolog:x", "expected redolog:<count>"),
])
def test_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        RetentionPolicy.parse(spec)
    with pytest.raises(ConfigError, match="retention.sets: .*" + message):
        RetentionPolicy.parse(spec, key="retention.sets")


def test_gmt_buckets_do_not_follow_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        a = RetentionItem("a", "set", ms(2024, 1, 1, 23, 0), True, "set", None)
        b = RetentionItem("b", "set", ms(2024, 1, 2, 1, 0), True, "set", None)
        plan = plan_retention([a, b], RetentionPolicy(0, 2, 0, 0), ms(2024, 1, 3))
        assert set(plan.keep) == {"a", "b"}  # two GMT days, though one local day at UTC+14
    finally:
        monkeypatch.undo()
        time.tzset()


def test_ms_helper() -> None:
    assert ms(1970, 1, 1) == 0
    assert calendar.timegm((2024, 1, 1, 0, 0, 0)) * 1000 == BASE
