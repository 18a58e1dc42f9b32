"""Installing, removing and reading one owner's schedule in a target: plan, then execute.

Owns the two targets (`CrontabTarget`, `SystemdTarget`) behind one `Target` protocol, the plans
they make (what a `--dry-run` prints) and what executing one did (`Outcome`).

Invariants:

- planning reads and never writes; a plan's `preview()` is the dry run, and `execute()` does
  exactly what it previews.
- a plan changes one owner's block or units only; the others' stay byte for byte.
- a crontab plan refuses to execute (StateConflict) when the crontab changed after it was read,
  so an edit made in between is never lost.
- systemctl runs only when the target was asked to activate; otherwise its commands are
  returned as next steps for the user.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from standby import _process
from standby._process import Command
from standby.errors import NotFound, StateConflict, UsageError
from standby.schedule.crontab import crontab_install, crontab_remove, crontab_schedules
from standby.schedule.model import Schedule
from standby.schedule.stores import CrontabStore, UnitStore, UserCrontab
from standby.schedule.systemd import UnitChange, units_install, units_remove, units_schedules

Runner = Callable[[Command], object]


@dataclass(frozen=True)
class Outcome:
    """What executing a plan did, and what is left for the user to run."""

    owner: str
    action: str  # installed, removed or unchanged
    target: str
    written: int | None = None  # unit files (None for a crontab)
    deleted: int = 0
    next_steps: tuple[Command, ...] = ()

    def describe(self) -> list[str]:
        head = f"{self.action} schedule {self.owner!r} in {self.target}"
        if self.written is not None:
            head += f": {self.written} units written, {self.deleted} removed"
        return [head, *(f"next: {c}" for c in self.next_steps)]


@dataclass(frozen=True)
class CrontabPlan:
    """A crontab's text before and after installing or removing `owner`'s block."""

    owner: str
    installing: bool
    store: CrontabStore
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def preview(self) -> list[str]:
        """The dry run: the whole crontab as it would be."""
        return [self.after or "# (the crontab would be empty)"]

    def execute(self, run: Runner = _process.run) -> Outcome:
        target = self.store.describe()
        if not self.changed:
            return Outcome(self.owner, "unchanged", target)
        if self.store.read() != self.before:
            raise StateConflict(f"{target} changed while the schedule was being planned",
                                hint="run the command again")
        self.store.write(self.after)
        return Outcome(self.owner, "installed" if self.installing else "removed", target)


@dataclass(frozen=True)
class UnitPlan:
    """Unit files to write and delete for `owner`, and the systemctl commands around them."""

    owner: str
    installing: bool
    units: UnitStore
    change: UnitChange
    activate: bool

    def preview(self) -> list[str]:
        """The dry run: each file written (with its text), each deleted, each command run."""
        d = self.change.directory
        lines = [f"# --- would write {os.path.join(d, n)}\n{t}"
                 for n, t in self.change.write.items()]
        lines += [f"# --- would delete {os.path.join(d, n)}" for n in self.change.delete]
        before, after = self.change.activation()
        lines += [f"# --- would run {c}" for c in (*before, *after)] if self.activate else []
        return lines

    def execute(self, run: Runner = _process.run) -> Outcome:
        before, after = self.change.activation()
        if self.activate:
            for cmd in before:
                run(cmd)
        self.units.apply(self.change)
        if self.activate:
            for cmd in after:
                run(cmd)
        left = () if self.activate or not (self.change.write or self.change.delete) \
            else (*before, *after)
        return Outcome(self.owner, "installed" if self.installing else "removed",
                       self.change.directory, written=len(self.change.write),
                       deleted=len(self.change.delete), next_steps=tuple(left))


Plan = CrontabPlan | UnitPlan


class Target(Protocol):
    """Where schedules are installed: a crontab or a systemd unit directory."""

    def describe(self) -> str: ...

    def installed(self) -> list[Schedule]: ...

    def plan_install(self, schedule: Schedule) -> Plan: ...

    def plan_remove(self, owner: str) -> Plan: ...


@dataclass(frozen=True)
class CrontabTarget:
    """Cron lines in a crontab (the current user's by default)."""

    store: CrontabStore = field(default_factory=UserCrontab)

    def describe(self) -> str:
        return self.store.describe()

    def installed(self) -> list[Schedule]:
        return crontab_schedules(self.store.read())

    def plan_install(self, schedule: Schedule) -> CrontabPlan:
        before = self.store.read()
        return CrontabPlan(schedule.owner, True, self.store, before,
                           crontab_install(before, schedule))

    def plan_remove(self, owner: str) -> CrontabPlan:
        before = self.store.read()
        return CrontabPlan(owner, False, self.store, before, crontab_remove(before, owner))


@dataclass(frozen=True)
class SystemdTarget:
    """Timers and services in a unit directory; `activate` runs systemctl to stop, reload and
    start them (else the commands are left as next steps)."""

    units: UnitStore
    activate: bool = False

    def describe(self) -> str:
        return self.units.describe()

    def installed(self) -> list[Schedule]:
        return units_schedules(self.units.read_all())

    def plan_install(self, schedule: Schedule) -> UnitPlan:
        change = units_install(self.units.read_all(), schedule, self.units.describe())
        return UnitPlan(schedule.owner, True, self.units, change, self.activate)

    def plan_remove(self, owner: str) -> UnitPlan:
        change = units_remove(self.units.read_all(), owner, self.units.describe())
        return UnitPlan(owner, False, self.units, change, self.activate)


def installed_schedule(target: Target, owner: str) -> Schedule:
    """`owner`'s installed schedule, or NotFound."""
    for s in target.installed():
        if s.owner == owner:
            return s
    raise NotFound(f"no standby schedule {owner!r} is installed in {target.describe()}")


def saved_schedule(text: str, *, source: str, owner: str | None = None) -> Schedule:
    """The one schedule in a file written by `render_block` (`standby schedule save`), or the
    one of `owner` when the file holds several."""
    found = [s for s in crontab_schedules(text) if owner is None or s.owner == owner]
    if len(found) != 1:
        raise UsageError(f"{source} holds {len(found)} standby schedules"
                         + (f" for owner {owner!r}" if owner else ""),
                         hint="save one with `standby schedule save`" if not found
                         else "choose one with --owner")
    return found[0]
