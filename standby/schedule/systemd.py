"""systemd units: a schedule as `.service`/`.timer` files, read back, and the change to a unit
directory that installing or removing one owner's schedule makes.

Owns the unit-file format only (pure functions on names and text); the directory itself is
`stores.UnitDir`.

Invariants:

- a timed entry is a oneshot `.service` plus a `.timer` whose `OnCalendar=` fires exactly when
  cron would (checked against systemd-analyze); an expression with no such equal (both day
  fields restricted: cron ORs them) is refused, not approximated.
- a long-running entry is one `Type=simple` `.service` with `Restart=on-failure`, wanted by
  `multi-user.target`, and no timer.
- every unit file opens with its owner's BEGIN marker and the entry as JSON, so
  `units_schedules(render_units(s)) == [s]` (Hypothesis-tested); only files whose marker names
  the owner are replaced or deleted for it, and a file name another owner holds is refused.
- `ExecStart=` runs exactly the argv: `%` and `$` doubled, C escapes quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from standby._process import Command
from standby.errors import FormatError, StateConflict, UsageError
from standby.schedule.cron import ALIASES, expanded, split_fields, validate_cron
from standby.schedule.model import BEGIN, Schedule, ScheduleEntry

_DOW = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HEADER = "# standby-entry: "


def cron_to_oncalendar(cron: str) -> str:
    """The systemd `OnCalendar=` value that fires when `cron` does, or UsageError saying why
    there is none.

    One cron rule has no OnCalendar equal: when both day-of-month and day-of-week are
    restricted (neither starts with `*`), cron fires when *either* matches, while OnCalendar
    needs both. Such an expression must be split into two entries.
    """
    valid = validate_cron(cron)
    fields = split_fields(ALIASES.get(valid, valid))
    if not fields[2].startswith("*") and not fields[4].startswith("*"):
        raise UsageError(
            f"cron expression {cron!r} cannot be a systemd timer: cron runs it when the "
            "day-of-month OR the day-of-week matches, OnCalendar only when both do",
            hint="split it into two entries, one per day field")
    values = expanded(valid)
    minute, hour, dom, month, dow = (_compress(v) for v in values)
    days = ""
    if dow != "*":
        # cron counts from Sunday (0 and 7), OnCalendar from Monday
        monday_first = sorted({(int(d) + 6) % 7 for d in values[4]})
        days = _compress(monday_first, names=_DOW) + " "
    return f"{days}*-{month}-{dom} {hour}:{minute}:00"


def _compress(values: Sequence[int | str], names: Sequence[str] | None = None) -> str:
    if list(values) == ["*"]:
        return "*"
    nums = sorted({int(v) for v in values})
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
    """File name -> text: a `.service` and a `.timer` per timed entry, a `.service` per
    long-running one. A timed entry's `then` is a second `ExecStart=` of its oneshot service:
    systemd runs it only if the first succeeded."""
    files: dict[str, str] = {}
    for position, (stem, e) in enumerate(zip(unit_stems(schedule), schedule.entries)):
        header = {**e.as_dict(), "position": position}
        head = (f"{BEGIN}{schedule.owner}\n{_HEADER}{json.dumps(header, sort_keys=True)}\n"
                f"[Unit]\nDescription=standby {schedule.owner}: {e.name} ({_when(e)})\n")
        execs = "".join(f"ExecStart={_exec_line(argv)}\n" for argv in (e.argv, e.then) if argv)
        if e.cron is None:
            # It ships or serves continuously: wait for the network, come back after a crash.
            files[f"{stem}.service"] = head + (
                "Wants=network-online.target\nAfter=network-online.target\n\n"
                f"[Service]\nType=simple\n{execs}Restart=on-failure\nRestartSec=10s\n\n"
                "[Install]\nWantedBy=multi-user.target\n")
            continue
        files[f"{stem}.service"] = head + f"\n[Service]\nType=oneshot\n{execs}"
        # AccuracySec: systemd would otherwise coalesce wake-ups by up to a minute, blurring
        # the stagger between sets and redolog snapshots.
        files[f"{stem}.timer"] = head + (
            f"\n[Timer]\nOnCalendar={cron_to_oncalendar(e.cron)}\nAccuracySec=1s\n"
            f"Unit={stem}.service\n\n[Install]\nWantedBy=timers.target\n")
    return files


def _when(e: ScheduleEntry) -> str:
    return f"cron {e.cron}" if e.cron else "always running"


def units_schedules(files: Mapping[str, str]) -> list[Schedule]:
    """The schedules recorded in standby's units (the `# standby-entry:` line of each entry's
    `.service`), by owner, each in the order it was installed."""
    by_owner: dict[str, list[tuple[int, ScheduleEntry]]] = {}
    for name in sorted(files):
        if name.endswith(".service"):
            found = _unit_header(name, files[name])
            if found is not None:
                owner, position, entry = found
                by_owner.setdefault(owner, []).append((position, entry))
    return [Schedule(o, tuple(e for _, e in sorted(es, key=lambda pe: pe[0])))
            for o, es in sorted(by_owner.items())]


def _unit_header(name: str, text: str) -> tuple[str, int, ScheduleEntry] | None:
    owner = unit_owner(text)
    if owner is None:
        return None
    for line in text.split("\n")[1:3]:
        if line.startswith(_HEADER):
            try:
                d = json.loads(line[len(_HEADER):])
                return owner, int(d.get("position", 0)), ScheduleEntry.from_dict(d)
            except (ValueError, KeyError, TypeError, AttributeError, UsageError) as e:
                raise FormatError(f"unit {name}: unreadable standby-entry line: {e}") from e
    return None


def unit_owner(text: str) -> str | None:
    """The owner named by a unit file's BEGIN marker, or None if standby did not write it."""
    first = text.split("\n", 1)[0]
    return first[len(BEGIN):].strip(" \t") if first.startswith(BEGIN) else None


def owned_units(files: Mapping[str, str], owner: str) -> list[str]:
    return sorted(n for n, t in files.items() if unit_owner(t) == owner)


def _started(names: Iterable[str]) -> set[str]:
    """The units systemctl enables and starts: every timer, and every service no timer runs
    (a long-running entry)."""
    names = set(names)
    return {n for n in names if n.endswith(".timer")
            or (n.endswith(".service") and n[:-len(".service")] + ".timer" not in names)}


@dataclass(frozen=True)
class UnitChange:
    """Unit files to write and to delete in one directory, and the units to stop, start and
    restart around it (a long-running service whose unit changed is restarted)."""

    directory: str
    write: Mapping[str, str]
    delete: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    start: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()

    def activation(self) -> tuple[list[Command], list[Command]]:
        """systemctl commands to run before and after applying: stop what goes away, then
        reload, start what was written and restart what changed while running."""
        before = [Command.of("systemctl", "disable", "--now", *self.stop)] if self.stop else []
        after = [Command.of("systemctl", "daemon-reload")]
        if self.start:
            after.append(Command.of("systemctl", "enable", "--now", *self.start))
        if self.restart:
            after.append(Command.of("systemctl", "restart", *self.restart))
        return before, after


def units_install(existing: Mapping[str, str], schedule: Schedule, directory: str) -> UnitChange:
    """Replace `schedule.owner`'s units in a directory holding `existing` (name -> text)."""
    write = render_units(schedule)
    for name in write:
        holder = unit_owner(existing[name]) if name in existing else schedule.owner
        if holder != schedule.owner:
            raise StateConflict(f"unit {name} in {directory} belongs to "
                                + (f"schedule {holder!r}" if holder else "someone else"),
                                hint="choose another owner or entry name")
    mine = owned_units(existing, schedule.owner)
    was, now = _started(mine), _started(write)
    changed = {n for n in write if existing.get(n) != write[n]}
    return UnitChange(directory, write,
                      delete=tuple(n for n in mine if n not in write),
                      stop=tuple(sorted(was - now)),
                      start=tuple(sorted(now)),
                      restart=tuple(sorted(n for n in now & was & changed
                                           if n.endswith(".service"))))


def units_remove(existing: Mapping[str, str], owner: str, directory: str) -> UnitChange:
    mine = owned_units(existing, owner)
    return UnitChange(directory, {}, delete=tuple(mine), stop=tuple(sorted(_started(mine))))
