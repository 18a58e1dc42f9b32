"""Named default schedules and the commands their entries run.

Owns the default sets as data (standby's own; Zimbra's classic `zmschedulebackup` defaults),
the long-running `standby stream` schedule, `Invocation` (the absolute executable and config that cron and systemd must name, since their
PATH and working directory are not the user's) and finding that executable.

Invariant: every command a default entry runs starts with an absolute path, so the installed
line means the same whoever's PATH runs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from standby.errors import UsageError
from standby.schedule.model import Schedule, ScheduleEntry


@dataclass(frozen=True)
class Invocation:
    """How a scheduled job runs standby: `program --config config ...`, both absolute."""

    program: str
    config: str

    def argv(self, *words: str) -> tuple[str, ...]:
        return (self.program, "--config", self.config, *words)

    def resolve(self, argv: Sequence[str]) -> tuple[str, ...]:
        """`argv` with a leading word `standby` replaced by this program and config (cron's
        PATH would not find it); any other command as it is."""
        if argv and argv[0] == "standby":
            return self.argv(*argv[1:])
        return tuple(argv)


def locate_program(name: str, *, argv0: str, executable: str, hint: str | None = None) -> str:
    """The absolute path of the installed console script `name`: the running one (`argv0`),
    else the one beside the Python `executable` (a venv's bin), else the one on PATH."""
    started = Path(argv0)
    if started.name == name and started.is_file():
        return str(started.absolute())
    beside = Path(executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return str(Path(found).absolute())
    raise UsageError(f"cannot tell where the {name} executable is",
                     hint=hint or f"give the absolute path of {name}")


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

    A follow-up that starts with the word `standby` (`standby snapshot prune`) is run with the
    same absolute program and config (`Invocation.resolve`).
    """
    run = Invocation(program, config)
    return default_schedule("standby", owner=owner, prefix=run.argv(), then=run.resolve(then),
                            crons=crons)


STREAM_OWNER = "stream"


def stream_schedule(*, program: str, config: str, owner: str = STREAM_OWNER) -> Schedule:
    """`program --config config stream`, kept running (a systemd service restarted when it
    fails), as its own owner so that it is installed, shown and removed apart from the
    snapshots'. Its target is the config's (`stream.target`, else `target.url`)."""
    run = Invocation(program, config)
    return Schedule(owner, (ScheduleEntry.long_running("stream", run.argv("stream")),))
