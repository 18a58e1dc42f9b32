"""`standby schedule ...`: install, show, save and remove the cron lines (or systemd timers) that
take sets hourly, redolog snapshots at :15/:30/:45 and prune nightly, and the systemd service
that keeps `standby stream` running (`install --stream`, owner `stream`).

Thin commands over `standby.schedule`: each builds the target (the user's crontab, a crontab
file, or a unit directory), plans the change, prints its preview on `--dry-run`, else executes
it. Only `install` and `default` need the configuration: generated commands carry the absolute path
of this `standby` executable and `--config <absolute path>`, because cron's PATH and working
directory are not the user's.
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from standby import schedule as sched
from standby.cli import common
from standby.errors import ConfigError, NotFound, UsageError
from standby.schedule import STREAM_OWNER, CrontabFile, CrontabTarget, SystemdTarget, UnitDir
from standby.transfer import factory

app = typer.Typer(help="Cron lines or systemd timers for sets, redolog snapshots and pruning; "
                  "the systemd service of standby stream.", no_args_is_help=True)

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
    "--enable", help="With --systemd: run systemctl to stop, reload and start the timers "
    "(or the stream's service).")]
ThenOpt = Annotated[str | None, typer.Option(
    "--then", help="Command to run after each successful snapshot, such as "
    "'standby snapshot prune' or a script of yours; a leading 'standby' gets this executable "
    "and config.")]
ProgramOpt = Annotated[Path | None, typer.Option(
    "--program", help="The standby executable cron should run (default: this one).")]
StreamOpt = Annotated[bool, typer.Option(
    "--stream", help=f"The always-running `standby stream` service (owner {STREAM_OWNER!r} "
    "unless --owner), instead of the snapshots' schedule; needs --systemd.")]


def _target(crontab_file: Path | None, systemd: bool, unit_dir: Path,
            enable: bool = False) -> sched.Target:
    if systemd and crontab_file:
        raise UsageError("--systemd and --crontab-file exclude each other")
    if systemd:
        return SystemdTarget(UnitDir(unit_dir), activate=enable)
    return CrontabTarget(CrontabFile(crontab_file.absolute()) if crontab_file
                         else sched.UserCrontab())


def _program(explicit: Path | None) -> str:
    """The absolute path of the running `standby` executable."""
    if explicit:
        return str(explicit.absolute())
    return sched.locate_program("standby", argv0=sys.argv[0], executable=sys.executable,
                                hint="pass --program PATH")


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


def _run(plan: sched.Plan, dry_run: bool) -> None:
    for line in plan.preview() if dry_run else plan.execute().describe():
        common.emit(line)


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
    target = _target(crontab_file, systemd, unit_dir)
    schedules = [sched.installed_schedule(target, owner)] if owner is not None \
        else target.installed()
    now = datetime.now().astimezone()  # cron fires in the host's local time
    if json_out:
        common.emit_json([s.as_dict(now=now) for s in schedules])
        return
    if not schedules:
        common.emit("no standby schedule is installed")
    for s in schedules:
        common.emit("\n".join(s.describe(now)))


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
    stream: StreamOpt = False,
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
    --stream --systemd installs the service that keeps `standby stream` running instead.
    """
    if stream:
        if any((set_cron, redolog_cron, prune_cron, then, from_file)):
            raise UsageError("--stream installs the stream's service; it takes no snapshot "
                             "times, --then or --from",
                             hint="install the snapshots' schedule with its own command")
        _install_stream(ctx, owner, program, crontab_file, systemd, unit_dir, enable, dry_run)
        return
    target = _target(crontab_file, systemd, unit_dir, enable)
    if from_file:
        if any((set_cron, redolog_cron, prune_cron, then, program)):
            raise UsageError("--from installs a saved schedule as it is; it takes no other "
                             "schedule options")
        try:
            text = from_file.read_text()
        except OSError as e:
            raise NotFound(f"cannot read {from_file}: {e.strerror}") from e
        schedule = sched.saved_schedule(text, source=str(from_file), owner=owner)
    else:
        crons = {k: v for k, v in (("set", set_cron), ("redolog", redolog_cron),
                                   ("prune", prune_cron)) if v}
        schedule = sched.standby_schedule(
            program=_program(program), config=_config_path(ctx), owner=owner or DEFAULT_OWNER,
            then=_then(then), crons=crons)
    _run(target.plan_install(schedule), dry_run)


def _install_stream(ctx: typer.Context, owner: str | None, program: Path | None,
                    crontab_file: Path | None, systemd: bool, unit_dir: Path, enable: bool,
                    dry_run: bool) -> None:
    """`install --stream`: checked before any crontab or unit directory is read."""
    if not systemd:
        # Cron only starts jobs at set times; an @reboot line would neither restart the
        # shipper when it dies nor stop it, so there is no cron form of it.
        raise UsageError("standby stream runs all the time and must be restarted when it "
                         "fails, which cron cannot do: it is installed as a systemd service",
                         hint="add --systemd (and --unit-dir DIR, --enable)")
    s = common.settings(ctx)
    url = factory.target_url(s.stream.target, s)
    if url.scheme not in factory.OBJECT_SCHEMES:
        raise UsageError(f"standby stream ships to s3:// and file:// targets, not {url}",
                         hint="set stream.target (or target.url) to one in the config file")
    schedule = sched.stream_schedule(program=_program(program), config=_config_path(ctx),
                                     owner=owner or STREAM_OWNER)
    _run(_target(crontab_file, systemd, unit_dir, enable).plan_install(schedule), dry_run)


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
    target = _target(crontab_file, systemd, unit_dir, enable)
    schedule = sched.standby_schedule(program=_program(program), config=_config_path(ctx),
                                      owner=owner or DEFAULT_OWNER, then=_then(then))
    _run(target.plan_install(schedule), dry_run)


@app.command()
def remove(
    owner: OwnerOpt = None,
    stream: Annotated[bool, typer.Option(
        "--stream", help=f"Remove the stream's service (owner {STREAM_OWNER!r} unless "
        "--owner).")] = False,
    crontab_file: CrontabFileOpt = None,
    systemd: SystemdOpt = False,
    unit_dir: UnitDirOpt = DEFAULT_UNIT_DIR,
    enable: EnableOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Remove the standby block (or units) of OWNER; everything else stays."""
    target = _target(crontab_file, systemd, unit_dir, enable)
    _run(target.plan_remove(owner or (STREAM_OWNER if stream else DEFAULT_OWNER)), dry_run)


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
    name = owner or DEFAULT_OWNER
    schedule = sched.installed_schedule(_target(crontab_file, systemd, unit_dir), name)
    if any(not e.timed for e in schedule.entries):
        raise UsageError(f"schedule {name!r} keeps a service running; a saved schedule holds "
                         "cron lines only",
                         hint="install it again with `standby schedule install --stream "
                         "--systemd`")
    text = sched.render_block(schedule)
    if path is None:
        common.emit(text)
        return
    CrontabFile(path.absolute()).write(text)
    common.emit(f"saved schedule {name!r} to {path}")

