"""Session labels and the small values Zimbra's backup tools accept.

- Labels: `full-yyyyMMdd.HHmmss.SSS` and `incr-yyyyMMdd.HHmmss.SSS`, the session's start time
  in GMT with milliseconds (GMT so that labels sort in time order across daylight-saving
  changes). `parse(str(label)) == label` for every label (Hypothesis-tested). The guide also
  writes labels without the dash and milliseconds (`full20211130135236`); `resolve` finds the
  session such a prefix names.
- Names used as paths inside a target (labels, account ids) never contain `/`, `\\`, NUL or
  `..`: `check_name` refuses them before any path is built.
- Ages for `zmbackup -del` (`7d`, `1m`, `1y`), intervals for `zimbraBackupAutoGroupedInterval`
  (`1d`, `2w`), sizes for `zimbraBackupMinFreeSpace` (`25%`, `300MB`, `0`), and the `-del`
  argument itself (a label, a date `YYYY/MM/DD[-hh:mm:ss]`, or an age).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from standby import timefmt
from standby.errors import NotFound, UsageError

KINDS = {"full": "full", "incr": "incremental"}
_LABEL_RX = re.compile(r"(full|incr)-(\d{8}\.\d{6}\.\d{3})\Z")
_COMPACT_RX = re.compile(r"(full|incr)-?(\d{8})\.?(\d{6})(?:\.?(\d{3}))?\Z")
DAY_MS = 86_400_000


@dataclass(frozen=True, order=True)
class Label:
    """A session label; orders by start time, then kind."""

    ms: int
    kind: str  # "full" or "incr"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"a label kind is 'full' or 'incr', not {self.kind!r}")
        if self.ms < 0:
            raise UsageError("a label's time cannot be before 1970")

    def __str__(self) -> str:
        return f"{self.kind}-{timefmt.gmt_stamp(self.ms)}"

    @property
    def type(self) -> str:
        """`full` or `incremental`, as zmbackupquery prints it."""
        return KINDS[self.kind]


def make(kind: str, now_ms: int) -> Label:
    return Label(now_ms, kind)


def check_name(text: str, *, what: str = "label") -> str:
    """`text` unchanged if it is safe as one path component, else UsageError."""
    if not text or text in (".", "..") or ".." in text or any(c in text for c in "/\\\0"):
        raise UsageError(f"{what} {text!r} is not valid: it must not be empty or contain "
                         "'/', '\\', '..' or NUL")
    return text


def parse(text: str) -> Label:
    """A label exactly as Zimbra writes it; UsageError naming the expected form otherwise."""
    check_name(text)
    m = _LABEL_RX.match(text)
    if not m:
        raise UsageError(f"label {text!r} is not a backup label",
                         hint="labels look like full-20210712.155951.123 or "
                         "incr-20210713.010000.000")
    return Label(timefmt.parse_gmt_stamp(m.group(2)), m.group(1))


def resolve(text: str, known: Iterable[Label]) -> Label:
    """The label `text` names among `known`: an exact label, or the guide's compact spelling
    (`full20211130135236`, seconds or milliseconds) when exactly one session matches."""
    check_name(text)
    known = list(known)
    if _LABEL_RX.match(text):
        lb = parse(text)
        if lb in known:
            return lb
        raise NotFound(f"no backup session labelled {text}",
                       hint="`zmbackupquery` lists the sessions of the target")
    m = _COMPACT_RX.match(text)
    if m is None:
        return parse(text)  # raises the usage error with the expected form
    kind, day, hms, ms = m.groups()
    prefix = f"{kind}-{day}.{hms}" + (f".{ms}" if ms else "")
    hits = [lb for lb in known if str(lb).startswith(prefix)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise NotFound(f"no backup session labelled {text}",
                       hint="`zmbackupquery` lists the sessions of the target")
    raise UsageError(f"label {text!r} matches {len(hits)} sessions",
                     hint="give the whole label: " + ", ".join(str(h) for h in hits[:3]))


# ---------------------------------------------------------------------------------------------
# Ages, intervals, sizes


@dataclass(frozen=True)
class Age:
    """`nn{d|m|y}`: days, calendar months or calendar years back from a moment."""

    count: int
    unit: str  # "d", "m" or "y"

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def before(self, now_ms: int) -> int:
        """The moment `self` before `now_ms` (months and years by the GMT calendar, the day
        clamped to the month's length)."""
        if self.unit == "d":
            return now_ms - self.count * DAY_MS
        dt = datetime.fromtimestamp(now_ms // 1000, tz=UTC)
        months = self.count * (12 if self.unit == "y" else 1)
        y, mo = divmod(dt.year * 12 + dt.month - 1 - months, 12)
        if y < 1:
            return -(2 ** 62)  # before any session
        day = min(dt.day, _days_in_month(y, mo + 1))
        back = dt.replace(year=y, month=mo + 1, day=day)
        return int(back.timestamp()) * 1000 + now_ms % 1000


def _days_in_month(y: int, m: int) -> int:
    nxt = datetime(y + (m == 12), m % 12 + 1, 1)
    return (nxt - datetime(y, m, 1)).days


_AGE_RX = re.compile(r"(\d{1,5})([dmy])\Z")
_INTERVAL_RX = re.compile(r"(\d{1,4})([dw])\Z")


def parse_age(text: str) -> Age:
    m = _AGE_RX.match(text.strip().lower())
    if not m or int(m.group(1)) < 1:
        raise UsageError(f"{text!r} is not an age", hint="e.g. 7d, 1m or 1y (days, months, "
                         "years)")
    return Age(int(m.group(1)), m.group(2))


def parse_interval(text: str) -> int:
    """`xd` or `xw` (at least one) as milliseconds."""
    m = _INTERVAL_RX.match(text.strip().lower())
    if not m or int(m.group(1)) < 1:
        raise UsageError(f"{text!r} is not a backup interval",
                         hint="one or more days or weeks: 1d, 2d, 1w")
    n = int(m.group(1))
    return n * DAY_MS * (7 if m.group(2) == "w" else 1)


def format_interval(ms: int) -> str:
    days = ms // DAY_MS
    return f"{days // 7}w" if days % 7 == 0 else f"{days}d"


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
          "g": 1024 ** 3, "gb": 1024 ** 3, "t": 1024 ** 4, "tb": 1024 ** 4}
_SIZE_RX = re.compile(r"(\d+(?:\.\d+)?)\s*(%|[kmgt]?b?)\Z")


@dataclass(frozen=True)
class MinFree:
    """zimbraBackupMinFreeSpace: a share of the disk (`25%`) or an amount (`300MB`); 0 is off."""

    percent: float | None = None
    amount: int = 0

    @property
    def disabled(self) -> bool:
        return self.percent is None and self.amount == 0

    def required(self, total_bytes: int) -> int:
        if self.percent is not None:
            return int(total_bytes * self.percent / 100)
        return self.amount

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{self.percent:g}%"
        return format_bytes(self.amount) if self.amount else "0"


def parse_min_free(text: str) -> MinFree:
    m = _SIZE_RX.match(text.strip().lower())
    if not m:
        raise UsageError(f"{text!r} is not a free-space amount",
                         hint="a percentage of the disk (25%), an amount (300MB, 50GB), or 0")
    num, unit = float(m.group(1)), m.group(2)
    if unit == "%":
        if not 0 <= num <= 100:
            raise UsageError(f"{text!r}: a percentage is between 0 and 100")
        return MinFree(percent=num) if num else MinFree()
    return MinFree(amount=int(num * _UNITS[unit]))


def format_bytes(n: int) -> str:
    for unit, size in (("TB", 1024 ** 4), ("GB", 1024 ** 3), ("MB", 1024 ** 2),
                       ("KB", 1024)):
        if n >= size:
            v = n / size
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.1f}{unit}"
    return f"{n}B"


# ---------------------------------------------------------------------------------------------
# `zmbackup -del <label | YYYY/MM/DD[-hh:mm:ss] | nn{d|m|y}>`


@dataclass(frozen=True)
class DeleteSpec:
    """What `-del` names: a label (it and all sessions before it), a moment (sessions before
    it), or an age (sessions older than it)."""

    label: Label | None = None
    before_ms: int | None = None
    age: Age | None = None

    def cutoff(self, now_ms: int) -> int:
        """Sessions that started before this moment are deleted (a label: up to and
        including it, handled by the planner)."""
        if self.label is not None:
            return self.label.ms
        if self.age is not None:
            return self.age.before(now_ms)
        assert self.before_ms is not None
        return self.before_ms


_DATE_RX = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})\Z")


def parse_delete(text: str) -> DeleteSpec:
    t = text.strip()
    if t.startswith(("full", "incr")):
        return DeleteSpec(label=parse(t))
    if _AGE_RX.match(t.lower()):
        return DeleteSpec(age=parse_age(t))
    m = _DATE_RX.match(t)
    if m:
        return DeleteSpec(before_ms=timefmt.parse(f"{t} 00:00:00", option="-del"))
    try:
        return DeleteSpec(before_ms=timefmt.parse(t, option="-del"))
    except UsageError:
        raise UsageError(f"-del: {text!r} is neither a label, a date nor an age",
                         hint="e.g. -del full-20210712.155951.123, -del 2021/07/01, "
                         "-del 2021/07/01-12:00:00 or -del 7d (d, m, y)") from None
