"""Retention planning for snapshot sets and redolog snapshots: which to keep, which to prune.

This module owns the *decision* only. It is pure: no I/O, no clock (the caller passes `now_ms`),
no logging. `standby snapshot prune` builds `RetentionItem`s from the manifests, calls
`plan_retention`, prints the plan on `--dry-run`, and otherwise destroys `plan.prune`, oldest
first.

Invariants of every plan (tested with Hypothesis in tests/test_retention.py):

- `keep` and `prune` partition the input ids; the plan depends only on the items (not their
  order), the policy and `now_ms`;
- nothing an unshipped snapshot needs is pruned, and the newest shipped snapshot of each volume
  chain (the base of the next incremental send) is kept;
- the newest set is kept; snapshots taken in the future (clock skew) are kept;
- applying the plan and planning again at the same `now_ms` prunes nothing more.

Semantics of the set tiers (sanoid's vocabulary, GMT buckets)
--------------------------------------------------------------
A tier `hourly = N` keeps, for each of the N most recent GMT hours *that contain a set*, the
newest set in that hour; likewise `daily` (GMT calendar days), `weekly` (ISO weeks, Monday to
Sunday) and `monthly` (calendar months). Buckets are counted back from the newest set not after
`now`. A set can be kept by several tiers; its reasons list them all.

**An empty bucket does not consume a slot.** `48h` means "48 hourly restore points", not "the
last 48 hours of the clock". That is how sanoid and pyznap count, and it is what a standby
operator expects: when snapshots stop (primary down, cron broken, disk full), the passing of
time alone never prunes a restore point. With window semantics (btrbk, zrepl's grid), a week
without new sets would silently empty the hourly tier and a six-month gap would delete every set
but the newest — exactly when the history matters most. The compact spec borrows btrbk's
spelling (`48h 14d 8w 6m`) but keeps sanoid's meaning: the letter names the granularity, the
number counts restore points.

The newest set (not after `now`) is always kept, whatever the policy says.

Redolog snapshots
-----------------
Kept if among the newest `redolog_keep` (not after `now`) or younger than `redolog_max_age_s`
(strictly: `now - taken_at < max_age`). Nothing else keeps them: a redolog snapshot older than
the oldest kept set is useless for replay (replay starts at a set), but we do not prune such
snapshots *against* an explicit count or age either — the count/age is the operator's request,
and the cheap 15-minute snapshots are what closes the RPO gap after the newest set, so the rule
"older than the oldest kept set may go" only ever applies through count and age.

Holds (override the policy, listed in `held` when they are the only reason)
-----------------------------------------------------------------------------
- every unshipped snapshot is kept (it has not reached the standby yet);
- the parent of every unshipped snapshot is kept. Applied to every unshipped snapshot this holds
  each unshipped snapshot's whole parent chain back to, and including, its newest shipped
  ancestor: walking up, every unshipped link is itself kept and holds its own parent, and the
  walk's last link is the first shipped ancestor. Parents that are not in the input (already
  gone) end the chain;
- the newest shipped snapshot of each volume chain (`RetentionItem.volume`) is kept: it is the
  base of the next incremental send. With clock skew "newest" is ambiguous, so the newest shipped
  one not after `now` is held too;
- snapshots taken after `now` are kept and take no part in the tiers or in "newest".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from standby.errors import ConfigError, FormatError, StandbyError, UsageError

KINDS = ("set", "redolog")
TIERS = ("hourly", "daily", "weekly", "monthly")
HOLD = "hold: "

_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RetentionItem:
    """One snapshot as retention sees it."""

    id: str  # snapshot id (a set id, or a redolog snapshot id)
    kind: str  # "set" | "redolog"
    taken_at_ms: int  # epoch ms, GMT
    shipped: bool  # already shipped to the standby
    volume: str  # the chain it belongs to: "set" for sets, "redolog" for redolog snapshots
    parent: str | None  # the snapshot this one is incremental to (same chain), or None


@dataclass(frozen=True)
class RetentionPolicy:
    """How many restore points to keep per tier, and how many redolog snapshots."""

    hourly: int = 48
    daily: int = 14
    weekly: int = 8
    monthly: int = 6
    redolog_keep: int = 96  # newest redolog snapshots to keep (count)...
    redolog_max_age_s: int | None = None  # ...and/or keep those younger than this

    def __post_init__(self) -> None:
        for name in (*TIERS, "redolog_keep"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"retention: {name} must be a whole number >= 0, not {v!r}")
        age = self.redolog_max_age_s
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age <= 0):
            raise ConfigError(f"retention: redolog_max_age_s must be > 0 seconds, not {age!r}")

    @classmethod
    def parse(cls, text: str, *, key: str | None = None) -> RetentionPolicy:
        """Parse a compact spec such as `"48h 14d 8w 6m"` or `"24h 7d redolog:96 redolog:1d"`.

        Tokens, separated by blanks or commas, each at most once:
          `<N>h`, `<N>d`, `<N>w`, `<N>m`   hourly, daily, weekly, monthly restore points;
          `redolog:<N>`                     newest redolog snapshots to keep;
          `redolog:<N><s|min|h|d|w>`        keep redolog snapshots younger than this.
        A tier that is not named keeps nothing (as in btrbk: the spec is the whole statement);
        redolog settings that are not named keep their defaults. Errors are `ConfigError`
        naming `key` when parsing a config value, else `UsageError`.
        """
        err: type[StandbyError] = ConfigError if key else UsageError
        where = f"{key}: " if key else ""

        def bad(msg: str) -> StandbyError:
            return err(f"{where}retention spec {text!r}: {msg}",
                       hint='e.g. "48h 14d 8w 6m redolog:96"')

        tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
        if not tokens:
            raise bad("is empty")
        values: dict[str, int | None] = {}
        for tok in tokens:
            name, value = _parse_token(tok, bad)
            if name in values:
                raise bad(f"{_LABEL[name]} is given twice")
            values[name] = value
        kwargs: dict[str, int | None] = {t: values.get(t, 0) for t in TIERS}
        kwargs.update({k: v for k, v in values.items() if k.startswith("redolog")})
        return cls(**kwargs)  # type: ignore[arg-type]

    def to_spec(self) -> str:
        """The compact spec `parse` reads back to an equal policy."""
        parts = [f"{getattr(self, t)}{_UNIT_OF_TIER[t]}" for t in TIERS]
        parts.append(f"redolog:{self.redolog_keep}")
        if self.redolog_max_age_s is not None:
            parts.append(f"redolog:{_render_duration(self.redolog_max_age_s)}")
        return " ".join(parts)


_UNIT_OF_TIER = {"hourly": "h", "daily": "d", "weekly": "w", "monthly": "m"}
_TIER_OF_UNIT = {u: t for t, u in _UNIT_OF_TIER.items()}
_LABEL = {**{t: f"the {t} tier" for t in TIERS},
          "redolog_keep": "the redolog count", "redolog_max_age_s": "the redolog age"}
_DURATION_S = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_token(tok: str, fail: Callable[[str], StandbyError]) -> tuple[str, int | None]:
    low = tok.lower()
    if low.startswith("redolog:"):
        rest = low[len("redolog:"):]
        if re.fullmatch(r"\d+", rest):
            return "redolog_keep", int(rest)
        m = re.fullmatch(r"(\d+)(s|min|h|d|w)", rest)
        if m:
            seconds = int(m.group(1)) * _DURATION_S[m.group(2)]
            if seconds == 0:
                raise fail(f"{tok!r}: the redolog age must be more than zero")
            return "redolog_max_age_s", seconds
        if re.fullmatch(r"\d+m", rest):
            raise fail(f"{tok!r}: say 'min' for minutes in a redolog age")
        raise fail(f"{tok!r}: expected redolog:<count> or redolog:<N><s|min|h|d|w>")
    m = re.fullmatch(r"(\d+)([a-z]+)", low)
    if not m:
        raise fail(f"{tok!r} is not <number><h|d|w|m>")
    unit = m.group(2)
    if unit == "y":
        raise fail("a yearly tier is not supported; keep more monthly restore points instead")
    if unit not in _TIER_OF_UNIT:
        raise fail(f"{tok!r}: unknown unit {unit!r} (use h, d, w or m)")
    return _TIER_OF_UNIT[unit], int(m.group(1))


def _render_duration(seconds: int) -> str:
    for unit in ("w", "d", "h", "min"):
        if seconds % _DURATION_S[unit] == 0:
            return f"{seconds // _DURATION_S[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class RetentionPlan:
    """What to keep (with every reason) and what to prune (oldest first)."""

    keep: dict[str, tuple[str, ...]]  # id -> reasons, ordered oldest snapshot first
    prune: tuple[str, ...]  # ids to delete, oldest first
    held: dict[str, str] = field(default_factory=dict)  # kept only because of a hold -> why

    def as_dict(self) -> dict[str, object]:
        return {"keep": {k: list(v) for k, v in self.keep.items()},
                "prune": list(self.prune), "held": dict(self.held)}


# ---------------------------------------------------------------------------------------------
# Buckets (GMT)


def hour_bucket(ms: int) -> int:
    return ms // _HOUR_MS


def day_bucket(ms: int) -> int:
    return ms // _DAY_MS


def week_bucket(ms: int) -> int:
    # 1970-01-01 was a Thursday; shifting by 3 days makes buckets start on Mondays, which are
    # exactly ISO weeks (ISO weeks run Monday to Sunday).
    return (ms // _DAY_MS + 3) // 7


def month_bucket(ms: int) -> int:
    d = _EPOCH + timedelta(milliseconds=ms)
    return d.year * 12 + d.month - 1


_BUCKETS = {"hourly": hour_bucket, "daily": day_bucket, "weekly": week_bucket,
            "monthly": month_bucket}


# ---------------------------------------------------------------------------------------------
# The planner


def plan_retention(
    items: Sequence[RetentionItem], policy: RetentionPolicy, now_ms: int
) -> RetentionPlan:
    """Decide what to keep and prune; see the module docstring for the exact rules."""
    by_id = _index(items)
    ordered = sorted(by_id.values(), key=_age_key)  # oldest first; ties broken by id
    reasons: dict[str, list[str]] = {i.id: [] for i in ordered}
    present = [i for i in ordered if i.taken_at_ms <= now_ms]

    sets_newest_first = [i for i in reversed(present) if i.kind == "set"]
    if sets_newest_first:
        reasons[sets_newest_first[0].id].append("newest")
    for tier in TIERS:
        for item in _newest_per_bucket(sets_newest_first, _BUCKETS[tier], getattr(policy, tier)):
            reasons[item.id].append(tier)

    redo_newest_first = [i for i in reversed(present) if i.kind == "redolog"]
    for item in redo_newest_first[: policy.redolog_keep]:
        reasons[item.id].append(f"redolog: newest {policy.redolog_keep}")
    if policy.redolog_max_age_s is not None:
        limit_ms = policy.redolog_max_age_s * 1000
        for item in redo_newest_first:
            if now_ms - item.taken_at_ms < limit_ms:
                reasons[item.id].append(f"redolog: younger than {policy.redolog_max_age_s} s")

    _add_holds(ordered, by_id, now_ms, reasons)

    keep = {i.id: tuple(reasons[i.id]) for i in ordered if reasons[i.id]}
    prune = tuple(i.id for i in ordered if not reasons[i.id])
    held = {k: "; ".join(r[len(HOLD):] for r in v)
            for k, v in keep.items() if all(r.startswith(HOLD) for r in v)}
    return RetentionPlan(keep=keep, prune=prune, held=held)


def _age_key(item: RetentionItem) -> tuple[int, str]:
    return (item.taken_at_ms, item.id)


def _index(items: Iterable[RetentionItem]) -> dict[str, RetentionItem]:
    by_id: dict[str, RetentionItem] = {}
    for item in items:
        if item.kind not in KINDS:
            raise FormatError(f"snapshot {item.id!r}: unknown kind {item.kind!r}",
                              hint="expected 'set' or 'redolog'")
        if item.id in by_id:
            raise FormatError(f"snapshot id {item.id!r} appears twice in the catalog",
                              hint="two manifests claim the same id; check the catalog")
        by_id[item.id] = item
    return by_id


def _newest_per_bucket(
    newest_first: Sequence[RetentionItem], bucket: Callable[[int], int], slots: int
) -> list[RetentionItem]:
    """The newest item of each of the `slots` most recent non-empty buckets."""
    chosen: list[RetentionItem] = []
    last: int | None = None
    for item in newest_first:
        b = bucket(item.taken_at_ms)
        if b == last:
            continue  # newest first: the first item seen in a bucket is its newest
        if len(chosen) >= slots:
            break
        chosen.append(item)
        last = b
    return chosen


def _add_holds(
    ordered: Sequence[RetentionItem],
    by_id: dict[str, RetentionItem],
    now_ms: int,
    reasons: dict[str, list[str]],
) -> None:
    """Append the hold reasons (see the module docstring) to `reasons`, in place."""
    for item in ordered:
        if item.taken_at_ms > now_ms:
            reasons[item.id].append(HOLD + "taken in the future (clock skew)")
        if not item.shipped:
            reasons[item.id].append(HOLD + "unshipped")
            parent = by_id.get(item.parent) if item.parent else None
            if parent is not None and parent.id != item.id:
                reasons[parent.id].append(HOLD + f"parent of unshipped {item.id}")
    chains: dict[str, list[RetentionItem]] = {}
    for item in ordered:
        if item.shipped:
            chains.setdefault(item.volume, []).append(item)
    for volume, shipped in sorted(chains.items()):
        bases = {shipped[-1].id}
        not_future = [i for i in shipped if i.taken_at_ms <= now_ms]
        if not_future:
            bases.add(not_future[-1].id)
        for base in sorted(bases):
            reasons[base].append(HOLD + f"base of the next incremental send ({volume} chain)")
