"""`standby schedule ...`: install, show, save and remove the cron lines (or systemd timers) that
take sets hourly, redolog snapshots at :15/:30/:45 and prune nightly.

Thin commands over `standby.snapshot.schedule`: each builds the target (the user's crontab, a
crontab file, or a unit directory), plans the change, prints it on `--dry-run`, else applies it.
Only `install` and `default` need the configuration: generated commands carry the absolute path
of this `standby` executable and `--config <absolute path>`, because cron's PATH and working
directory are not the user's.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from standby import _process
from standby.cli import common
from standby.errors import ConfigError, NotFound, UsageError
from standby.snapshot import schedule as sched
from standby.snapshot.schedule import CrontabFile, Schedule, UnitDir, UserCrontab

app = typer.Typer(help="Cron lines or systemd timers for sets, redolog snapshots and pruning.",
                  no_args_is_help=True)

DEFAULT_OWNER = "snapshot"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")

CrontabFileOpt = Annotated[Path | None, typer.Option(
    "--crontab-file", help="Work on this file instead of the user's crontab.")]
SystemdOpt = Annotated[bool, typer.Option(
    "--systemd", help="systemd .service/.timer units instead of cron lines.")]
UnitDirOpt = Annotated[Path, typer.Option(
    "--unit-dir", help="Where --systemd reads and writes units.")]
OwnerOpt = Annotated[str | None, typer.Option(
    "--owner", help=f"Name of the block (# BEGIN standby OWNER); default {DEFAULT_OWNER!r}. "
    "Give each config on one host its own.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would be written.")]
EnableOpt = Annotated[bool, typer.Option(
    "--enable", help="With --systemd: run systemctl to stop, reload and start the timers.")]
ThenOpt = Annotated[str | None, typer.Option(
    "--then", help="Command to run after each successful snapshot (e.g. 'standby ship'); "
    "a leading 'standby' gets this executable and config.")]
ProgramOpt = Annotated[Path | None, typer.Option(
    "--program", help="The standby executable cron should run (default: this one).")]


def _crontab(crontab_file: Path | None) -> sched.CrontabStore:
    return CrontabFile(crontab_file.absolute()) if crontab_file else UserCrontab()


def _check_target(crontab_file: Path | None, systemd: bool) -> None:
    if systemd and crontab_file:
        raise UsageError("--systemd and --crontab-file exclude each other")


def _program(explicit: Path | None) -> str:
    """The absolute path of the running `standby` executable."""
    if explicit:
        return str(explicit.absolute())
    argv0 = Path(sys.argv[0])
    if argv0.name == "standby" and argv0.is_file():
        return str(argv0.absolute())
    beside = Path(sys.executable).parent / "standby"
    if beside.is_file():
        return str(beside)
    found = shutil.which("standby")
    if found:
        return str(Path(found).absolute())
    raise UsageError("cannot tell where the standby executable is", hint="pass --program PATH")


def _config_path(ctx: typer.Context) -> str:
    source = common.settings(ctx).source
    if source is None:
        raise ConfigError("the schedule needs a configuration file to name in its commands")
    return str(source.absolute())


def _then(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    try:
        return tuple(shlex.split(text))
    except ValueError as e:
        raise UsageError(f"--then {text!r}: {e}") from e


def _installed(crontab_file: Path | None, systemd: bool, unit_dir: Path) -> list[Schedule]:
    if systemd:
        return sched.units_schedules(UnitDir(unit_dir).read_all())
    return sched.crontab_schedules(_crontab(crontab_file).read())


def _apply(
    schedule: Schedule | None, owner: str, *, crontab_file: Path | None, systemd: bool,
    unit_dir: Path, dry_run: bool, enable: bool,
) -> None:
    """Install `schedule` (or remove `owner`'s when None) in the chosen target."""
    verb = "installed" if schedule else "removed"
    if systemd:
        units = UnitDir(unit_dir)
        existing = units.read_all()
        change = (sched.units_install(existing, schedule, str(unit_dir)) if schedule
                  else sched.units_remove(existing, owner, str(unit_dir)))
        before, after = change.activation()
        if dry_run:
            for name, text in change.write.items():
                common.emit(f"# --- would write {unit_dir / name}\n{text}")
            for name in change.delete:
                common.emit(f"# --- would delete {unit_dir / name}")
            for cmd in (*before, *after) if enable else ():
                common.emit(f"# --- would run {cmd}")
            return
        if enable:
            for cmd in before:
                _process.run(cmd)
        units.apply(change)
        if enable:
            for cmd in after:
                _process.run(cmd)
        common.emit(f"{verb} schedule {owner!r} in {unit_dir}: {len(change.write)} units "
                    f"written, {len(change.delete)} removed")
        if not enable and (change.write or change.delete):
            for cmd in (*before, *after):
                common.emit(f"next: {cmd}")
        return
    store = _crontab(crontab_file)
    plan = sched.plan_crontab(store, schedule, owner)
    if dry_run:
        common.emit(plan.after if plan.after else "# (the crontab would be empty)")
        return
    sched.apply_crontab(store, plan)
    what = "unchanged" if not plan.changed else verb
    common.emit(f"{what} schedule {owner!r} in {plan.target}")


@app.command()
def show(
    owner: OwnerOpt = None,
    crontab_file: CrontabFileOpt = None,
    systemd: SystemdOpt = False,
    unit_dir: UnitDirOpt = DEFAULT_UNIT_DIR,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Show the installed standby schedules, with next run times (like `zmschedulebackup -q`).
    """
    _check_target(crontab_file, systemd)
    schedules = [s for s in _installed(crontab_file, systemd, unit_dir)
                 if owner is None or s.owner == owner]
    if owner is not None and not schedules:
        raise NotFound(f"no standby schedule {owner!r} is installed")
    now = datetime.now().astimezone()  # cron fires in the host's local time
    if json_out:
        common.emit_json([s.as_dict(now=now) for s in schedules])
        return
    if not schedules:
        common.emit("no standby schedule is installed")
    for s in schedules:
        common.emit(f"{s.owner}:")
        for e in s.entries:
            nxt = sched.next_run(e.cron, now).strftime("%Y-%m-%d %H:%M %Z")
            common.emit(f"  {e.name:<8} {e.cron:<18} next {nxt}  {e.command()}")


@app.command()
def install(
    ctx: typer.Context,
    set_cron: Annotated[str | None, typer.Option(
        "--set-cron", help="When to take sets (default '0 * * * *').")] = None,
    redolog_cron: Annotated[str | None, typer.Option(
        "--redolog-cron", help="When to take redolog snapshots (default '15,30,45 * * * *').")]
    = None,
    prune_cron: Annotated[str | None, typer.Option(
        "--prune-cron", help="When to prune (default '40 3 * * *').")] = None,
    from_file: Annotated[Path | None, typer.Option(
        "--from", help="Install the block saved in this file by `standby schedule save`.")]
    = None,
    then: ThenOpt = None,
    owner: OwnerOpt = None,
    program: ProgramOpt = None,
    crontab_file: CrontabFileOpt = None,
    systemd: SystemdOpt = False,
    unit_dir: UnitDirOpt = DEFAULT_UNIT_DIR,
    enable: EnableOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Install (replace) the schedule of sets, redolog snapshots and pruning.

    --then runs after each successful snapshot. Only the standby block of the crontab changes.
    """
    _check_target(crontab_file, systemd)
    if from_file:
        if any((set_cron, redolog_cron, prune_cron, then, program)):
            raise UsageError("--from installs a saved schedule as it is; it takes no other "
                             "schedule options")
        schedule = _load_saved(from_file, owner)
    else:
        crons = {k: v for k, v in (("set", set_cron), ("redolog", redolog_cron),
                                   ("prune", prune_cron)) if v}
        schedule = sched.standby_schedule(
            program=_program(program), config=_config_path(ctx), owner=owner or DEFAULT_OWNER,
            then=_then(then), crons=crons)
    _apply(schedule, schedule.owner, crontab_file=crontab_file, systemd=systemd,
           unit_dir=unit_dir, dry_run=dry_run, enable=enable)


@app.command()
def default(
    ctx: typer.Context,
    then: ThenOpt = None,
    owner: OwnerOpt = None,
    program: ProgramOpt = None,
    crontab_file: CrontabFileOpt = None,
    systemd: SystemdOpt = False,
    unit_dir: UnitDirOpt = DEFAULT_UNIT_DIR,
    enable: EnableOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Return to the default schedule (like `zmschedulebackup -D`).

    Sets hourly, redolog snapshots at :15/:30/:45, pruning at 03:40.
    """
    _check_target(crontab_file, systemd)
    schedule = sched.standby_schedule(program=_program(program), config=_config_path(ctx),
                                      owner=owner or DEFAULT_OWNER, then=_then(then))
    _apply(schedule, schedule.owner, crontab_file=crontab_file, systemd=systemd,
           unit_dir=unit_dir, dry_run=dry_run, enable=enable)


@app.command()
def remove(
    owner: OwnerOpt = None,
    crontab_file: CrontabFileOpt = None,
    systemd: SystemdOpt = False,
    unit_dir: UnitDirOpt = DEFAULT_UNIT_DIR,
    enable: EnableOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Remove the standby block (or units) of OWNER; everything else stays."""
    _check_target(crontab_file, systemd)
    _apply(None, owner or DEFAULT_OWNER, crontab_file=crontab_file, systemd=systemd,
           unit_dir=unit_dir, dry_run=dry_run, enable=enable)


@app.command()
def save(
    path: Annotated[Path | None, typer.Argument(
        help="File to write (default: standard output).")] = None,
    owner: OwnerOpt = None,
    crontab_file: CrontabFileOpt = None,
    systemd: SystemdOpt = False,
    unit_dir: UnitDirOpt = DEFAULT_UNIT_DIR,
) -> None:
    """Save the installed schedule (like `zmschedulebackup -s`).

    Reinstall it later with `standby schedule install --from PATH`.
    """
    _check_target(crontab_file, systemd)
    name = owner or DEFAULT_OWNER
    found = [s for s in _installed(crontab_file, systemd, unit_dir) if s.owner == name]
    if not found:
        raise NotFound(f"no standby schedule {name!r} is installed")
    text = sched.render_block(found[0])
    if path is None:
        common.emit(text)
        return
    CrontabFile(path.absolute()).write(text)
    common.emit(f"saved schedule {name!r} to {path}")


def _load_saved(path: Path, owner: str | None) -> Schedule:
    try:
        text = path.read_text()
    except OSError as e:
        raise NotFound(f"cannot read {path}: {e.strerror}") from e
    found = sched.crontab_schedules(text)
    if owner is not None:
        found = [s for s in found if s.owner == owner]
    if len(found) != 1:
        raise UsageError(f"{path} holds {len(found)} standby schedules"
                         + (f" for owner {owner!r}" if owner else ""),
                         hint="save one with `standby schedule save`" if not found
                         else "choose one with --owner")
    return found[0]
