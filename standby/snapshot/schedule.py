"""Schedules: the cron lines or systemd timers that run standby's periodic jobs.

Owns the model (`ScheduleEntry`, `Schedule`), cron-expression validation (croniter), rendering a
schedule as a marked crontab block and parsing it back, rendering systemd `.service`/`.timer`
units, the named default sets (standby's own; Zimbra's classic `zmschedulebackup` defaults), and
the two side-effect interfaces with their real implementations: a crontab (`crontab -l` /
`crontab -` through `standby._process`, or a plain file) and a unit directory.

Invariants:

- install and remove change only the lines from `# BEGIN standby <owner>` to
  `# END standby <owner>`; every other line of the crontab is kept as it was, in place. The
  block holds no variable assignments (`MAILTO=`, `PATH=`): in a crontab they would leak into
  the user's lines after it. Commands use absolute paths instead.
- `parse(render(s)) == s` for every schedule that `render` accepts (Hypothesis-tested).
- a rendered line makes cron run exactly `argv`, then `then` if `argv` succeeded (`&&`): words
  are quoted for /bin/sh, then `\\` and `%` escaped for cron. What cannot be said on one line (a
  newline or NUL in an argument) is refused, not mangled.
- cron expressions are validated with croniter before anything is written; a small syntax filter
  also refuses croniter's extensions that cron itself does not run (`L`, `W`, `#`, `?`, `H`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from croniter import CroniterError, croniter

from standby import _process
from standby._process import Command
from standby.errors import (
    CommandFailed,
    CommandNotFound,
    FormatError,
    StateConflict,
    UsageError,
    VolumeError,
)

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_NAMES = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
          4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]}
_ELEMENT = re.compile(r"(\*|\d+|[a-z]{3})(?:-(\d+|[a-z]{3}))?(?:/(\d+))?\Z")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")  # also part of systemd unit names
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
BEGIN, END = "# BEGIN standby ", "# END standby "


# ---------------------------------------------------------------------------------------------
# Cron expressions


def validate_cron(expr: str) -> str:
    """Return `expr` with its fields single-spaced, or raise UsageError naming the bad field."""
    text = " ".join(_fields(expr))

    def bad(msg: str, hint: str | None = None) -> UsageError:
        return UsageError(f"cron expression {expr!r}: {msg}", hint=hint)

    if text.startswith("@"):
        if text.lower() == "@reboot":
            raise bad("@reboot runs once at boot; a schedule needs a periodic time")
        if text.lower() not in ALIASES:
            raise bad("unknown @-alias", hint="use one of " + ", ".join(ALIASES))
        return text.lower()
    fields = _fields(text)
    if len(fields) != 5:
        glued = [f for f in fields if re.fullmatch(r"[\d*]+\*[\d*]*|\*\d+", f)]
        raise bad(f"needs exactly 5 fields (minute hour day-of-month month day-of-week), "
                  f"got {len(fields)}",
                  hint=f"{glued[0]!r} looks like two fields run together" if glued else None)
    for i, f in enumerate(fields):
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
                          hint=f"write {start}-{_RANGES[i][1]}/{step}")
            low, high = _number(start, i), (_number(stop, i) if stop is not None else None)
            if low is not None and high is not None and low > high:
                raise bad(f"{where}: the range {start}-{stop} runs backwards")
        probe = ["*"] * 5
        probe[i] = f
        try:
            croniter.expand(" ".join(probe))
        except (CroniterError, ValueError) as e:
            lo, hi = _RANGES[i]
            why = f"out of range {lo}-{hi}" if "range" in str(e) or "band" in str(e) else \
                "is not a valid value"
            raise bad(f"{where}: {why}") from e
    try:
        _croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError) as e:
        raise bad("day-of-month and month never match (such as 30 2, February 30)") from e
    return text


def _fields(text: str) -> list[str]:
    # cron separates fields with blanks and tabs only (not every Unicode space)
    return [f for f in re.split(r"[ \t]+", text) if f]


def _number(token: str, field_index: int) -> int | None:
    if token.isdigit():
        return int(token)
    names = _NAMES.get(field_index)
    if names and token in names:
        return names.index(token) + (1 if field_index == 3 else 0)
    return None  # an unknown name: croniter reports it, naming the field


def next_run(cron: str, after: datetime) -> datetime:
    """The first time after `after` (an aware datetime, in cron's time zone) that `cron` fires."""
    return _croniter(cron, after).get_next(datetime)  # type: ignore[no-any-return]


def _croniter(cron: str, start: datetime) -> croniter:
    # Vixie cron matches day-of-month OR day-of-week only when neither field starts with `*`
    # (`*/10` counts as starred); croniter would use OR for `*/10` too unless told.
    expr = ALIASES.get(cron, cron)
    dom, dow = _fields(expr)[2], _fields(expr)[4]
    return croniter(expr, start, day_or=not (dom.startswith("*") or dow.startswith("*")))


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class ScheduleEntry:
    """One scheduled job: `cron` fires `argv`, then `then` (if any) when `argv` succeeded.

    `name` is the job's kind (`set`, `redolog`, `prune`; Zimbra's `f`, `i`, `d`). Names may
    repeat within a schedule (`zmschedulebackup -A f ...` adds a second full backup).
    """

    name: str
    cron: str
    argv: tuple[str, ...]
    then: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UsageError(f"schedule entry name {self.name!r} must be letters, digits, "
                             "'.', '_' or '-' (at most 64)")
        object.__setattr__(self, "cron", validate_cron(self.cron))
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "then", tuple(self.then))
        if not self.argv or not self.argv[0]:
            raise UsageError(f"schedule entry {self.name!r} has no command")
        if self.then and not self.then[0]:
            raise UsageError(f"schedule entry {self.name!r}: the follow-up command is empty")
        for word in (*self.argv, *self.then):
            if any(c in word for c in "\n\r\0"):
                raise UsageError(f"schedule entry {self.name!r}: argument {word!r} contains a "
                                 "line break or NUL, which a crontab line cannot hold")

    def command(self) -> str:
        """The /bin/sh command line (before `cron_escape`)."""
        cmd = sh_join(self.argv)
        return f"{cmd} && {sh_join(self.then)}" if self.then else cmd

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "cron": self.cron, "argv": list(self.argv),
                "then": list(self.then)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ScheduleEntry:
        return cls(str(d["name"]), str(d["cron"]), tuple(d["argv"]),  # type: ignore[arg-type]
                   tuple(d.get("then") or ()))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Schedule:
    """The entries that one owner (`snapshot`, `zmschedulebackup`, ...) keeps in a crontab."""

    owner: str
    entries: tuple[ScheduleEntry, ...] = ()

    def __post_init__(self) -> None:
        if not _OWNER.match(self.owner):
            raise UsageError(f"schedule owner {self.owner!r} must be letters, digits, '.', '_', "
                             "':' or '-' (at most 64)")
        object.__setattr__(self, "entries", tuple(self.entries))

    def add(self, *entries: ScheduleEntry) -> Schedule:
        return Schedule(self.owner, (*self.entries, *entries))

    def replace(self, entries: Iterable[ScheduleEntry]) -> Schedule:
        return Schedule(self.owner, tuple(entries))

    def without(self, name: str) -> Schedule:
        return Schedule(self.owner, tuple(e for e in self.entries if e.name != name))

    def named(self, name: str) -> tuple[ScheduleEntry, ...]:
        return tuple(e for e in self.entries if e.name == name)

    def as_dict(self, *, now: datetime | None = None) -> dict[str, object]:
        entries = []
        for e in self.entries:
            d = e.as_dict()
            if now is not None:
                d["next_run"] = next_run(e.cron, now).isoformat()
            entries.append(d)
        return {"owner": self.owner, "entries": entries}


@dataclass(frozen=True)
class DefaultEntry:
    """An entry of a named default set; `args` follow the caller's program prefix."""

    name: str
    cron: str
    args: tuple[str, ...]
    with_then: bool = False  # gets the follow-up command (shipping after a snapshot)


DEFAULT_SETS: dict[str, tuple[DefaultEntry, ...]] = {
    # Sets on the hour; redolog snapshots at the other quarters; pruning once a night, away
    # from the quarter hours so it does not contend with a snapshot.
    "standby": (
        DefaultEntry("set", "0 * * * *", ("snapshot", "set"), with_then=True),
        DefaultEntry("redolog", "15,30,45 * * * *", ("snapshot", "redolog"), with_then=True),
        DefaultEntry("prune", "40 3 * * *", ("snapshot", "prune")),
    ),
    # Zimbra's installed defaults for the standard method (the guide, "zmschedulebackup"):
    # full Saturday 1 a.m., incremental Sunday to Friday 1 a.m., delete sessions older than a
    # month at midnight. The program prefix is zmbackup's path.
    "zimbra-classic": (
        DefaultEntry("f", "0 1 * * 6", ("-f", "-a", "all")),
        DefaultEntry("i", "0 1 * * 0-5", ("-i",)),
        DefaultEntry("d", "0 0 * * *", ("-del", "1m")),
    ),
}


def default_schedule(
    set_name: str,
    *,
    owner: str,
    prefix: Sequence[str],
    then: Sequence[str] = (),
    crons: Mapping[str, str] | None = None,
) -> Schedule:
    """A named default set as a schedule: each entry runs `prefix + args`; `crons` overrides
    entry times by name; `then` is appended to the entries that take a follow-up."""
    try:
        defaults = DEFAULT_SETS[set_name]
    except KeyError:
        raise UsageError(f"no default schedule named {set_name!r}",
                         hint="choose one of " + ", ".join(DEFAULT_SETS)) from None
    crons = dict(crons or {})
    unknown = sorted(set(crons) - {d.name for d in defaults})
    if unknown:
        raise UsageError(f"the {set_name!r} schedule has no entry {unknown[0]!r}")
    return Schedule(owner, tuple(
        ScheduleEntry(d.name, crons.get(d.name, d.cron), (*prefix, *d.args),
                      tuple(then) if d.with_then else ())
        for d in defaults))


def standby_schedule(
    *, program: str, config: str, owner: str = "snapshot", then: Sequence[str] = (),
    crons: Mapping[str, str] | None = None,
) -> Schedule:
    """standby's own jobs: `program --config config snapshot set|redolog|prune`.

    A follow-up that starts with the word `standby` (`standby ship`) is run with the same
    absolute program and config, since cron's PATH would not find it.
    """
    prefix = (program, "--config", config)
    if then and then[0] == "standby":
        then = (*prefix, *then[1:])
    return default_schedule("standby", owner=owner, prefix=prefix, then=then, crons=crons)


# ---------------------------------------------------------------------------------------------
# /bin/sh words


_SAFE = re.compile(r"[\w@%+=:,./-]+\Z", re.ASCII)  # what shlex.join leaves unquoted
_RESERVED = {"!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if",
             "in", "then", "until", "while"}


def sh_join(argv: Sequence[str]) -> str:
    """shlex.join, but a first word that sh would read as a keyword or `VAR=value` is quoted."""
    words = [shlex.quote(w) for w in argv]
    first = argv[0]
    if _SAFE.match(first) and (first in _RESERVED or re.match(r"[A-Za-z_]\w*=", first)):
        words[0] = f"'{first}'"
    return " ".join(words)


def sh_split_and(command: str, *, where: str) -> list[tuple[str, ...]]:
    """Split the commands of `a && b` into argv tuples, reading quotes as /bin/sh does.

    Only what `sh_join` writes is accepted: any other unquoted shell syntax (redirections,
    pipes, `;`, `$`, globs, comments, assignments) raises FormatError, because standby could
    not show or re-render it faithfully.
    """
    commands: list[list[str]] = [[]]
    word: list[str] | None = None  # None: between words
    bare = ""  # the word's unquoted beginning: `VAR=` there makes it an assignment
    all_bare = True
    i, n = 0, len(command)

    def finish() -> None:
        nonlocal word, bare, all_bare
        if word is not None:
            w = "".join(word)
            if not commands[-1] and ((all_bare and w in _RESERVED)
                                     or re.match(r"[A-Za-z_]\w*=", bare)):
                raise FormatError(f"{where}: {w!r} is shell syntax, not a command")
            commands[-1].append(w)
        word, bare, all_bare = None, "", True

    def add(text: str, quoted: bool) -> None:
        nonlocal word, bare, all_bare
        if word is None:
            word = []
        if quoted:
            all_bare = False
        elif all_bare:
            bare += text
        word.append(text)

    while i < n:
        c = command[i]
        if c in " \t":
            finish()
        elif c == "'":
            j = command.find("'", i + 1)
            if j < 0:
                raise FormatError(f"{where}: unterminated single quote")
            add(command[i + 1:j], True)
            i = j
        elif c == '"':
            j, buf = i + 1, []
            while j < n and command[j] != '"':
                if command[j] == "\\" and j + 1 < n and command[j + 1] in '\\"$`':
                    j += 1
                elif command[j] in "$`":
                    raise FormatError(f"{where}: expansion inside double quotes")
                buf.append(command[j])
                j += 1
            if j >= n:
                raise FormatError(f"{where}: unterminated double quote")
            add("".join(buf), True)
            i = j
        elif c == "\\" and i + 1 < n:
            add(command[i + 1], True)
            i += 1
        elif command.startswith("&&", i):
            finish()
            if not commands[-1]:
                raise FormatError(f"{where}: '&&' without a command before it")
            commands.append([])
            i += 1
        elif _SAFE.match(c):
            add(c, False)
        else:
            raise FormatError(f"{where}: unquoted shell syntax {c!r}",
                              hint="standby manages plain commands; run "
                                   "`standby schedule install` to rewrite its block")
        i += 1
    finish()
    if not commands[-1]:
        raise FormatError(f"{where}: no command" if len(commands) == 1 else
                          f"{where}: '&&' without a command after it")
    if len(commands) > 2:
        raise FormatError(f"{where}: more than one '&&'; an entry has one follow-up")
    return [tuple(c) for c in commands]


# ---------------------------------------------------------------------------------------------
# Crontab blocks


def cron_escape(command: str) -> str:
    """Escape a /bin/sh command for a crontab line.

    Vixie cron and its descendants (Debian's cron, cronie) read `\\%` as `%`, `\\\\` as `\\`,
    and an unescaped `%` as the end of the command (the rest becomes standard input). So every
    backslash is doubled and every `%` escaped.
    """
    return command.replace("\\", "\\\\").replace("%", "\\%")


def cron_unescape(command: str, *, where: str) -> str:
    """What cron hands to /bin/sh for a crontab command (do_command.c's translation)."""
    out: list[str] = []
    escaped = False
    for c in command:
        if escaped:
            escaped = False
            if c in "%\\":
                out[-1] = c  # the pair becomes the character; the backslash goes
                continue
        elif c == "\\":
            escaped = True
        elif c == "%":
            raise FormatError(f"{where}: unescaped '%' (cron would make the rest standard input)")
        out.append(c)
    return "".join(out)


def render_block(schedule: Schedule) -> str:
    """The schedule as crontab lines, between its BEGIN and END markers."""
    lines = [BEGIN + schedule.owner,
             "# Written by `standby schedule`; this block is replaced on every install."]
    for e in schedule.entries:
        lines += [f"# entry: {e.name}", f"{e.cron} {cron_escape(e.command())}"]
    lines.append(END + schedule.owner)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Block:
    owner: str
    start: int  # line index of BEGIN
    end: int  # line index of END


def _blocks(lines: Sequence[str]) -> list[_Block]:
    found: list[_Block] = []
    open_owner, open_at = None, -1
    for i, raw in enumerate(lines):
        line = raw.strip(" \t")
        if line.startswith(BEGIN):
            if open_owner is not None:
                raise FormatError(f"crontab line {i + 1}: a standby block starts inside the "
                                  f"block {open_owner!r} opened on line {open_at + 1}")
            open_owner, open_at = line[len(BEGIN):].strip(" \t"), i
        elif line.startswith(END):
            owner = line[len(END):].strip(" \t")
            if owner != open_owner:
                raise FormatError(f"crontab line {i + 1}: end of standby block {owner!r} "
                                  "without its BEGIN line",
                                  hint="fix the markers with `crontab -e`")
            if any(b.owner == owner for b in found):
                raise FormatError(f"crontab: two standby blocks for {owner!r}")
            found.append(_Block(owner, open_at, i))
            open_owner = None
    if open_owner is not None:
        raise FormatError(f"crontab line {open_at + 1}: standby block {open_owner!r} has no "
                          "END line", hint="fix the markers with `crontab -e`")
    return found


def _parse_entries(owner: str, lines: Sequence[str], first_line: int) -> Schedule:
    entries: list[ScheduleEntry] = []
    name = "custom"
    for k, raw in enumerate(lines):
        where = f"crontab line {first_line + k + 1}"
        line = raw.strip(" \t")
        if line.startswith("# entry:"):
            name = line[len("# entry:"):].strip(" \t")
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(@[^ \t]+|(?:[^ \t]+[ \t]+){4}[^ \t]+)[ \t]+([^ \t].*)\Z", line,
                     re.DOTALL)
        if not m:
            raise FormatError(f"{where}: not a cron line: {line!r}")
        try:
            cmds = sh_split_and(cron_unescape(m.group(2), where=where), where=where)
            entries.append(ScheduleEntry(name, m.group(1), cmds[0],
                                         cmds[1] if len(cmds) > 1 else ()))
        except UsageError as e:
            raise FormatError(f"{where}: {e.message}", hint=e.hint) from e
        name = "custom"
    return Schedule(owner, tuple(entries))


def _lines(text: str, *, keepends: bool = False) -> list[str]:
    """Split as cron does: at newlines only (str.splitlines also splits at \\x1e, \\u2028...)."""
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    elif keepends and parts:
        return [p + "\n" for p in parts[:-1]] + [parts[-1]]
    return [p + "\n" for p in parts] if keepends else parts


def crontab_schedules(text: str) -> list[Schedule]:
    """Every standby block in a crontab, in order."""
    lines = _lines(text)
    return [_parse_entries(b.owner, lines[b.start + 1:b.end], b.start + 1)
            for b in _blocks(lines)]


def crontab_schedule(text: str, owner: str) -> Schedule | None:
    return next((s for s in crontab_schedules(text) if s.owner == owner), None)


def crontab_install(text: str, schedule: Schedule) -> str:
    """`text` with `schedule`'s block replaced in place, or appended if it has none."""
    lines = _lines(text, keepends=True)
    block = _lines(render_block(schedule), keepends=True)
    for b in _blocks([ln.rstrip("\n") for ln in lines]):
        if b.owner == schedule.owner:
            return "".join(lines[:b.start] + block + lines[b.end + 1:])
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # crontab needs a newline at the end of every line; ours must not join
    return "".join(lines + block)


def crontab_remove(text: str, owner: str) -> str:
    """`text` without `owner`'s block (unchanged if there is none)."""
    lines = _lines(text, keepends=True)
    for b in _blocks([ln.rstrip("\n") for ln in lines]):
        if b.owner == owner:
            return "".join(lines[:b.start] + lines[b.end + 1:])
    return text


# ---------------------------------------------------------------------------------------------
# systemd


_DOW = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def cron_to_oncalendar(cron: str) -> str:
    """The systemd `OnCalendar=` value that fires when `cron` does, or UsageError saying why
    there is none.

    One cron rule has no OnCalendar equal: when both day-of-month and day-of-week are
    restricted (neither starts with `*`), cron fires when *either* matches, while OnCalendar
    needs both. Such an expression must be split into two entries.
    """
    valid = validate_cron(cron)
    expr = ALIASES.get(valid, valid)
    fields = _fields(expr)
    if not fields[2].startswith("*") and not fields[4].startswith("*"):
        raise UsageError(
            f"cron expression {cron!r} cannot be a systemd timer: cron runs it when the "
            "day-of-month OR the day-of-week matches, OnCalendar only when both do",
            hint="split it into two entries, one per day field")
    values, _nth = croniter.expand(expr)
    minute, hour, dom, month, dow = (_compress(v) for v in values[:5])
    days = ""
    if dow != "*":
        monday_first = sorted({(int(d) + 6) % 7 for d in values[4]})  # cron: 0 and 7 are Sunday
        days = _compress(monday_first, names=_DOW) + " "
    return f"{days}*-{month}-{dom} {hour}:{minute}:00"


def _compress(values: Sequence[object], names: Sequence[str] | None = None) -> str:
    if values == ["*"]:
        return "*"
    nums = sorted({int(v) for v in values})  # type: ignore[call-overload]
    out, i = [], 0
    fmt = (lambda v: names[v]) if names else (lambda v: f"{v:02d}")
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(f"{fmt(nums[i])}..{fmt(nums[j])}" if j - i >= 2 else
                   ",".join(fmt(v) for v in nums[i:j + 1]))
        i = j + 1
    return ",".join(out)


def systemd_quote(word: str, *, first: bool = False) -> str:
    """One ExecStart= word: `%` and `$` doubled (specifiers, variables), C escapes quoted
    (control characters as `\\xNN`). A first word starting with one of systemd's prefixes
    (`-`, `@`, `+`, `:`, `!`) is quoted so that it is read as a path, not as a prefix."""
    text = word.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_/.,:+=-]+", text) and not (first and text[0] in "-+:!@"):
        return text
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    quoted = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", quoted)
    return f'"{quoted}"'


def _exec_line(argv: Sequence[str]) -> str:
    return " ".join(systemd_quote(w, first=i == 0) for i, w in enumerate(argv))


def unit_stems(schedule: Schedule) -> list[str]:
    """File name stems, `standby-<owner>-<name>`, numbered when a name repeats."""
    seen: dict[str, int] = {}
    stems = []
    for e in schedule.entries:
        seen[e.name] = seen.get(e.name, 0) + 1
        suffix = f"-{seen[e.name]}" if seen[e.name] > 1 else ""
        stems.append(f"standby-{schedule.owner}-{e.name}{suffix}")
    return stems


def render_units(schedule: Schedule) -> dict[str, str]:
    """File name -> text of a `.service` and a `.timer` per entry. The `then` command is a
    second `ExecStart=` of the oneshot service: systemd runs it only if the first succeeded."""
    files: dict[str, str] = {}
    for position, (stem, e) in enumerate(zip(unit_stems(schedule), schedule.entries)):
        calendar = cron_to_oncalendar(e.cron)
        header = {**e.as_dict(), "position": position}
        head = (f"{BEGIN}{schedule.owner}\n"
                f"# standby-entry: {json.dumps(header, sort_keys=True)}\n"
                f"[Unit]\nDescription=standby {schedule.owner}: {e.name} (cron {e.cron})\n")
        execs = "".join(f"ExecStart={_exec_line(argv)}\n" for argv in (e.argv, e.then) if argv)
        files[f"{stem}.service"] = head + f"\n[Service]\nType=oneshot\n{execs}"
        # AccuracySec: systemd would otherwise coalesce wake-ups by up to a minute, blurring
        # the stagger between sets and redolog snapshots.
        files[f"{stem}.timer"] = head + (f"\n[Timer]\nOnCalendar={calendar}\nAccuracySec=1s\n"
                                         f"Unit={stem}.service\n\n[Install]\n"
                                         "WantedBy=timers.target\n")
    return files


def units_schedules(files: Mapping[str, str]) -> list[Schedule]:
    """The schedules recorded in standby's timer units (their `# standby-entry:` lines), in
    the order they were installed."""
    by_owner: dict[str, list[tuple[int, ScheduleEntry]]] = {}
    for name in sorted(files):
        if name.endswith(".timer"):
            found = _unit_header(name, files[name])
            if found is not None:
                owner, position, entry = found
                by_owner.setdefault(owner, []).append((position, entry))
    return [Schedule(o, tuple(e for _, e in sorted(es, key=lambda pe: pe[0])))
            for o, es in sorted(by_owner.items())]


def _unit_header(name: str, text: str) -> tuple[str, int, ScheduleEntry] | None:
    lines = _lines(text)
    if not lines or not lines[0].startswith(BEGIN):
        return None
    owner = lines[0][len(BEGIN):].strip(" \t")
    for line in lines[1:3]:
        if line.startswith("# standby-entry: "):
            try:
                d = json.loads(line[len("# standby-entry: "):])
                return owner, int(d.get("position", 0)), ScheduleEntry.from_dict(d)
            except (ValueError, KeyError, TypeError, AttributeError, UsageError) as e:
                raise FormatError(f"unit {name}: unreadable standby-entry line: {e}") from e
    return None


def owned_units(files: Mapping[str, str], owner: str) -> list[str]:
    return sorted(n for n, t in files.items() if t.startswith(f"{BEGIN}{owner}\n"))


@dataclass(frozen=True)
class UnitChange:
    """Unit files to write and to delete in one directory."""

    directory: str
    write: dict[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()

    def timers(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n.endswith(".timer"))

    def activation(self) -> tuple[list[Command], list[Command]]:
        """systemctl commands to run before and after applying: stop what goes away, then
        reload and start what was written."""
        before = [Command.of("systemctl", "disable", "--now", *self.timers(self.delete))] \
            if self.timers(self.delete) else []
        after = [Command.of("systemctl", "daemon-reload")]
        if self.timers(self.write):
            after.append(Command.of("systemctl", "enable", "--now", *self.timers(self.write)))
        return before, after


def units_install(existing: Mapping[str, str], schedule: Schedule, directory: str) -> UnitChange:
    write = render_units(schedule)
    stale = tuple(n for n in owned_units(existing, schedule.owner) if n not in write)
    return UnitChange(directory, write, stale)


def units_remove(existing: Mapping[str, str], owner: str, directory: str) -> UnitChange:
    return UnitChange(directory, {}, tuple(owned_units(existing, owner)))


# ---------------------------------------------------------------------------------------------
# Side effects: where a crontab or unit files live


class CrontabStore(Protocol):
    def read(self) -> str: ...

    def write(self, text: str) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class UserCrontab:
    """A user's crontab through the `crontab` program (the current user's by default)."""

    user: str | None = None
    program: str = "crontab"

    def _cmd(self, *args: str) -> Command:
        return Command.of(self.program, *(("-u", self.user) if self.user else ()), *args,
                          timeout=60)

    def list_command(self) -> Command:
        return self._cmd("-l")

    def install_command(self) -> Command:
        return self._cmd("-")

    def read(self) -> str:
        try:
            result = _process.run(self.list_command(), check=False)
        except CommandNotFound as e:
            raise CommandNotFound(e.message, hint="apt-get install cron; or write a file with "
                                  "--crontab-file, or systemd timers with --systemd") from e
        if result.returncode == 0:
            return result.text
        err = result.stderr.decode("utf-8", "replace")
        if "no crontab for" in err.lower():
            return ""
        raise CommandFailed(self.list_command().argv, result.returncode, err)

    def write(self, text: str) -> None:
        _process.run(self.install_command(), input=text.encode())

    def describe(self) -> str:
        return f"the crontab of {self.user}" if self.user else "the user's crontab"


@dataclass(frozen=True)
class CrontabFile:
    """A crontab kept in a plain file (tests, /etc/cron.d-style files). Written atomically."""

    path: Path

    def read(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""
        except OSError as e:
            raise VolumeError(f"cannot read {self.path}: {e.strerror}") from e

    def write(self, text: str) -> None:
        _atomic_write(self.path, text)

    def describe(self) -> str:
        return str(self.path)


class UnitStore(Protocol):
    def read_all(self) -> dict[str, str]: ...

    def apply(self, change: UnitChange) -> None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class UnitDir:
    """A systemd unit directory; only `standby-*` files are read, written or deleted."""

    path: Path

    def read_all(self) -> dict[str, str]:
        if not self.path.is_dir():
            return {}
        return {p.name: p.read_text() for p in sorted(self.path.glob("standby-*"))
                if p.suffix in (".service", ".timer") and p.is_file()}

    def apply(self, change: UnitChange) -> None:
        if not self.path.is_dir():
            raise VolumeError(f"unit directory {self.path} does not exist")
        for name, text in change.write.items():
            _atomic_write(self.path / name, text)
        for name in change.delete:
            (self.path / name).unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.path)


def _atomic_write(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise VolumeError(f"cannot write in {path.parent}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Plan, then apply


@dataclass(frozen=True)
class CrontabChange:
    """A crontab's text before and after; `apply` refuses if it changed in between."""

    target: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True),
                                            self.after.splitlines(keepends=True),
                                            self.target, self.target + " (new)"))


def plan_crontab(store: CrontabStore, schedule: Schedule | None, owner: str) -> CrontabChange:
    """Install `schedule`, or remove `owner`'s block when `schedule` is None."""
    before = store.read()
    after = crontab_install(before, schedule) if schedule else crontab_remove(before, owner)
    return CrontabChange(store.describe(), before, after)


def apply_crontab(store: CrontabStore, change: CrontabChange) -> None:
    if not change.changed:
        return
    if store.read() != change.before:
        raise StateConflict(f"{change.target} changed while the schedule was being planned",
                            hint="run the command again")
    store.write(change.after)
