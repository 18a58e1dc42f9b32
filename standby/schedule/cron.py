"""Cron expressions: validation (croniter plus a filter for what cron itself runs) and next runs.

Owns the five-field syntax every schedule entry is written in, whatever installs it.

Invariants:

- `validate_cron` returns the expression single-spaced (aliases lower-cased) or raises
  UsageError naming the field that is wrong; anything it returns croniter can expand and fires
  at least once.
- croniter's extensions that cron does not run (`L`, `W`, `#`, `?`, `H`) and `@reboot` (not a
  periodic time) are refused, so an expression that validates means the same to croniter,
  Vixie cron and cronie.
- `next_run` follows Vixie cron's day rule: day-of-month OR day-of-week only when neither field
  starts with `*`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from croniter import CroniterError, croniter

from standby.errors import UsageError

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_NAMES = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
          4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]}
_ELEMENT = re.compile(r"(\*|\d+|[a-z]{3})(?:-(\d+|[a-z]{3}))?(?:/(\d+))?\Z")


def validate_cron(expr: str) -> str:
    """Return `expr` with its fields single-spaced, or raise UsageError naming the bad field."""
    text = " ".join(split_fields(expr))

    def bad(msg: str, hint: str | None = None) -> UsageError:
        return _bad(expr, msg, hint)

    if text.startswith("@"):
        if text.lower() == "@reboot":
            raise bad("@reboot runs once at boot; a schedule needs a periodic time",
                      hint="a job that runs all the time is a long-running entry")
        if text.lower() not in ALIASES:
            raise bad("unknown @-alias", hint="use one of " + ", ".join(ALIASES))
        return text.lower()
    fields = split_fields(text)
    if len(fields) != 5:
        glued = [f for f in fields if re.fullmatch(r"[\d*]+\*[\d*]*|\*\d+", f)]
        raise bad(f"needs exactly 5 fields (minute hour day-of-month month day-of-week), "
                  f"got {len(fields)}",
                  hint=f"{glued[0]!r} looks like two fields run together" if glued else None)
    for i, f in enumerate(fields):
        _check_field(expr, i, f)
    try:
        _croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError) as e:
        raise bad("day-of-month and month never match (such as 30 2, February 30)") from e
    return text


def _bad(expr: str, msg: str, hint: str | None = None) -> UsageError:
    return UsageError(f"cron expression {expr!r}: {msg}", hint=hint)


def _check_field(expr: str, i: int, f: str) -> None:
    def bad(msg: str, hint: str | None = None) -> UsageError:
        return _bad(expr, msg, hint)

    where = f"field {i + 1} ({FIELDS[i]}) {f!r}"
    for element in f.lower().split(","):
        m = _ELEMENT.match(element)
        if not m:
            raise bad(f"{where} uses syntax cron does not accept",
                      hint="numbers, *, a-b ranges, /steps and lists; L, W, #, ? and H "
                           "are croniter extensions")
        start, stop, step = m.groups()
        if step is not None and stop is None and start != "*":
            raise bad(f"{where}: a step needs * or a range before it",
                      hint=f"write {start}-{RANGES[i][1]}/{step}")
        low, high = _number(start, i), (_number(stop, i) if stop is not None else None)
        if low is not None and high is not None and low > high:
            raise bad(f"{where}: the range {start}-{stop} runs backwards")
    # croniter checks the values; alone in an otherwise starred expression, so that its
    # complaint is about this field.
    probe = ["*"] * 5
    probe[i] = f
    try:
        croniter.expand(" ".join(probe))
    except (CroniterError, ValueError) as e:
        lo, hi = RANGES[i]
        why = f"out of range {lo}-{hi}" if "range" in str(e) or "band" in str(e) else \
            "is not a valid value"
        raise bad(f"{where}: {why}") from e


def split_fields(text: str) -> list[str]:
    """The fields of a cron expression: cron separates them with blanks and tabs only (not
    every Unicode space)."""
    return [f for f in re.split(r"[ \t]+", text) if f]


def expanded(cron: str) -> list[list[int | str]]:
    """The five fields of a valid expression (aliases resolved) as croniter's value lists:
    numbers, or `["*"]` for a starred field."""
    values, _nth = croniter.expand(ALIASES.get(cron, cron))
    return [list(v) for v in values[:5]]


def _number(token: str, field_index: int) -> int | None:
    if token.isdigit():
        return int(token)
    names = _NAMES.get(field_index)
    if names and token in names:
        return names.index(token) + (1 if field_index == 3 else 0)
    return None  # an unknown name: croniter reports it, naming the field


def next_run(cron: str, after: datetime) -> datetime:
    """The first time after `after` (an aware datetime, in cron's time zone) that `cron` fires."""
    nxt: datetime = _croniter(cron, after).get_next(datetime)
    return nxt


def _croniter(cron: str, start: datetime) -> croniter:
    # Vixie cron matches day-of-month OR day-of-week only when neither field starts with `*`
    # (`*/10` counts as starred); croniter would use OR for `*/10` too unless told.
    fields = split_fields(ALIASES.get(cron, cron))
    return croniter(" ".join(fields), start,
                    day_or=not (fields[2].startswith("*") or fields[4].startswith("*")))
