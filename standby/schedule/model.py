"""The model: a `ScheduleEntry` (one job) and a `Schedule` (the entries of one owner).

Owns what an entry may be, independent of where it is installed: a timed job (a cron
expression, an argv, an optional follow-up) or a long-running one (started at boot and kept
running, such as `standby stream`).

Invariants:

- a value that exists is valid: the cron expression is validated (and single-spaced), names and
  owners match what crontab markers and systemd unit names can hold, and no argument holds a
  line break or NUL, which neither a crontab line nor an `ExecStart=` could say.
- an owner's schedule is all that owner has: installing it replaces every entry the owner had
  and touches no other owner's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from standby.errors import UsageError
from standby.schedule.cron import next_run, validate_cron
from standby.schedule.shell import sh_join

# Owners are also part of systemd unit names, so no '@' (a template) and no '/'.
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# An owner's marker lines: they delimit its crontab block and open each of its unit files.
BEGIN, END = "# BEGIN standby ", "# END standby "


@dataclass(frozen=True)
class ScheduleEntry:
    """One job: `cron` fires `argv`, then `then` (if any) when `argv` succeeded.

    `name` is the job's kind (`set`, `redolog`, `prune`; Zimbra's `f`, `i`, `d`). Names may
    repeat within a schedule (`zmschedulebackup -A f ...` adds a second full backup).
    `cron=None` makes a long-running entry (see `long_running`).
    """

    name: str
    cron: str | None
    argv: tuple[str, ...]
    then: tuple[str, ...] = ()

    @classmethod
    def long_running(cls, name: str, argv: Sequence[str]) -> ScheduleEntry:
        """A job that runs all the time (`standby stream`): started at boot and restarted when
        it fails. Only a service manager can do that, so only systemd installs one."""
        return cls(name, None, tuple(argv))

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UsageError(f"schedule entry name {self.name!r} must be letters, digits, "
                             "'.', '_' or '-' (at most 64)")
        if self.cron is not None:
            object.__setattr__(self, "cron", validate_cron(self.cron))
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "then", tuple(self.then))
        if not self.argv or not self.argv[0]:
            raise UsageError(f"schedule entry {self.name!r} has no command")
        if self.then and not self.then[0]:
            raise UsageError(f"schedule entry {self.name!r}: the follow-up command is empty")
        if self.then and self.cron is None:
            raise UsageError(f"schedule entry {self.name!r} runs all the time, so it has no "
                             "end to follow up on", hint="give the follow-up its own entry")
        for word in (*self.argv, *self.then):
            if any(c in word for c in "\n\r\0"):
                raise UsageError(f"schedule entry {self.name!r}: argument {word!r} contains a "
                                 "line break or NUL, which a crontab line cannot hold")

    @property
    def timed(self) -> bool:
        return self.cron is not None

    def when(self) -> str:
        """The entry's time in words: its cron expression, or that it runs all the time."""
        return self.cron if self.cron is not None else "always running"

    def command(self) -> str:
        """The /bin/sh command line (before a crontab's escapes)."""
        cmd = sh_join(self.argv)
        return f"{cmd} && {sh_join(self.then)}" if self.then else cmd

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "cron": self.cron, "argv": list(self.argv),
                "then": list(self.then)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ScheduleEntry:
        """The inverse of `as_dict`; UsageError (or KeyError) when `d` is not one."""
        cron = d["cron"]
        return cls(str(d["name"]), None if cron is None else str(cron),
                   _words(d["argv"], "argv"), _words(d.get("then") or [], "then"))


def _words(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise UsageError(f"{key} must be a list of strings, not {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Schedule:
    """The entries one owner (`snapshot`, `ship`, `stream`, `classic`, ...) keeps installed."""

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
        """JSON form; with `now`, each timed entry's `next_run` (ISO 8601, `now`'s zone)."""
        entries = []
        for e in self.entries:
            d = e.as_dict()
            if now is not None:
                d["next_run"] = next_run(e.cron, now).isoformat() if e.cron else None
            entries.append(d)
        return {"owner": self.owner, "entries": entries}

    def describe(self, now: datetime) -> list[str]:
        """Human lines: the owner, then per entry its name, time, next run and command."""
        lines = [f"{self.owner}:"]
        for e in self.entries:
            nxt = f"next {next_run(e.cron, now).strftime('%Y-%m-%d %H:%M %Z')}" if e.cron \
                else "started at boot"
            lines.append(f"  {e.name:<8} {e.when():<18} {nxt}  {e.command()}")
        return lines
