"""`zmschedulebackup`: the backup schedule as the guide writes it, kept by the `schedule` package.

Entries are written as on Zimbra's command line: `f "0 1 * * 6"` (a full backup), `i "0 1 * *
0-5"` (an incremental), `d 1m "0 0 * * *"` (delete sessions older than an age); the five cron
fields may also come as five words. `parse_entries` and `format_entries` are each other's
inverse (Hypothesis-tested); `to_schedule` turns entries into the `classic` owner's `Schedule`
(each line runs zmbackup by its absolute path, with the configuration and target it was given)
and `from_schedule` reads them back from what is installed.

`-D` installs the guide's default for the backup mode: standard, a full backup Saturday 1:00, an
incremental Sunday to Friday 1:00 and deletion of sessions older than a month at 0:00;
auto-grouped, an auto-grouped session at 1:00 once every `zimbraBackupAutoGroupedInterval`
(days as a day-of-month step, `1w` on Saturdays, longer intervals every 7n days of the month:
cron has no "every n weeks") and the same deletion.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from standby.classic import labels
from standby.classic.attrs import BackupConfig
from standby.errors import FormatError, UsageError
from standby.schedule import Schedule, ScheduleEntry, default_schedule, validate_cron

OWNER = "classic"
KINDS = ("f", "i", "d")


@dataclass(frozen=True)
class Entry:
    kind: str  # f, i or d
    cron: str
    age: str | None = None  # for d

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"{self.kind!r} is not a schedule entry",
                             hint='f "CRON" (full), i "CRON" (incremental), d AGE "CRON" '
                             "(delete)")
        object.__setattr__(self, "cron", validate_cron(self.cron))
        if (self.kind == "d") != (self.age is not None):
            raise UsageError("a delete entry is d AGE \"CRON\" (e.g. d 1m \"0 0 * * *\"); only "
                             "it has an age")
        if self.age is not None:
            object.__setattr__(self, "age", str(labels.parse_age(self.age)))


def _cron_at(words: Sequence[str], i: int) -> tuple[str, int]:
    """The cron expression starting at words[i]: one quoted word, or five words."""
    if i >= len(words):
        raise UsageError("a schedule entry needs its time: five cron fields, e.g. \"0 1 * * 6\"")
    if len(words[i].split()) == 5 or words[i].startswith("@"):
        return words[i], i + 1
    if i + 5 <= len(words):
        return " ".join(words[i:i + 5]), i + 5
    raise UsageError(f"{words[i]!r} is not a cron time", hint='quote the five fields: "0 1 * * 6"')


def parse_entries(words: Sequence[str]) -> list[Entry]:
    out, i = [], 0
    while i < len(words):
        kind = words[i]
        if kind not in KINDS:
            raise UsageError(f"{kind!r} is not a schedule entry",
                             hint='f "CRON", i "CRON" or d AGE "CRON"')
        age = None
        i += 1
        if kind == "d":
            if i >= len(words):
                raise UsageError("d needs an age and a time, e.g. d 1m \"0 0 * * *\"")
            age, i = words[i], i + 1
        cron, i = _cron_at(words, i)
        out.append(Entry(kind, cron, age))
    if not out:
        raise UsageError("give at least one entry: f \"CRON\", i \"CRON\" or d AGE \"CRON\"")
    return out


def format_entries(entries: Sequence[Entry]) -> list[str]:
    words: list[str] = []
    for e in entries:
        words += [e.kind, *([e.age] if e.age else []), e.cron]
    return words


def command_line(entries: Sequence[Entry]) -> str:
    """`zmschedulebackup -R ...` that recreates `entries` (what -s prints)."""
    return shlex.join(["zmschedulebackup", "-R", *format_entries(entries)])


def to_schedule(entries: Sequence[Entry], *, zmbackup: str, extra: Sequence[str] = (),
                auto_grouped: bool = False) -> Schedule:
    """The `classic` schedule running `zmbackup [extra] ...` for each entry."""
    prefix = (zmbackup, *extra)
    full = ("-f",) if auto_grouped else ("-f", "-a", "all")
    args = {"f": full, "i": ("-i",)}
    return Schedule(OWNER, tuple(
        ScheduleEntry(e.kind, e.cron, (*prefix, *(args[e.kind] if e.kind != "d"
                                                  else ("-del", e.age or "1m"))))
        for e in entries))


def from_schedule(s: Schedule) -> list[Entry]:
    out = []
    for e in s.entries:
        argv = list(e.argv)
        if e.cron is None:
            raise FormatError(f"the {OWNER} schedule has an entry without a time")
        if "-del" in argv:
            i = argv.index("-del")
            if i + 1 >= len(argv):
                raise FormatError(f"the {OWNER} schedule's entry {e.name!r} has no age")
            out.append(Entry("d", e.cron, argv[i + 1]))
        elif "-i" in argv:
            out.append(Entry("i", e.cron))
        elif "-f" in argv:
            out.append(Entry("f", e.cron))
        else:
            raise FormatError(f"the {OWNER} schedule's entry {e.name!r} runs neither -f, -i "
                              "nor -del")
    return out


def default_entries(cfg: BackupConfig) -> list[Entry]:
    if not cfg.auto_grouped:
        s = default_schedule("zimbra-classic", owner=OWNER, prefix=("zmbackup",))
        return from_schedule(s)
    days = cfg.interval_ms // labels.DAY_MS
    if days == 1:
        cron = "0 1 * * *"
    elif days == 7:
        cron = "0 1 * * 6"
    elif days < 28:
        cron = f"0 1 */{days} * *"
    else:
        raise UsageError(f"zimbraBackupAutoGroupedInterval {labels.format_interval(cfg.interval_ms)}"
                         " is longer than cron can repeat within a month",
                         hint="set the schedule with zmschedulebackup -R")
    return [Entry("f", cron), Entry("d", "0 0 * * *", "1m")]


def lines(s: Schedule) -> list[str]:
    """The schedule as the guide shows it: cron fields, then the command."""
    return [f"{e.cron} {e.command()}" for e in s.entries]


def build(action: str, words: Sequence[str], *, installed: Schedule | None,
          cfg: BackupConfig, zmbackup: str, extra: Sequence[str] = ()) -> Schedule:
    """The schedule `-R` (replace), `-A` (add) or `-D` (default) asks for (pure)."""
    if action == "D":
        if words:
            raise UsageError("-D takes no entries: it installs the default schedule")
        entries = default_entries(cfg)
    else:
        entries = parse_entries(words)
    new = to_schedule(entries, zmbackup=zmbackup, extra=extra, auto_grouped=cfg.auto_grouped)
    if action == "A" and installed is not None:
        return installed.add(*new.entries)
    if action in ("R", "A", "D"):
        return new
    raise UsageError(f"-{action} is not a schedule change", hint="-R, -A or -D")
