"""Schedules: the cron lines or systemd units that run standby's jobs, for any owner.

Each owner (`snapshot` for sets, redolog snapshots and pruning; `ship`; `stream`; `classic` for
`zmschedulebackup`) declares its entries as one `Schedule` and installs, removes or reads it in
a `Target` — a crontab block `# BEGIN standby <owner>` … `# END standby <owner>`, or unit files
`standby-<owner>-*` — without touching any other owner's lines or units. Every change is
planned first; the plan's `preview()` is the dry run, `execute()` does it.

- `cron`: cron expressions (croniter validation, next run times);
- `model`: `ScheduleEntry` (timed, or long-running such as `standby stream`) and `Schedule`;
- `shell`: the /bin/sh words of an entry's command line;
- `crontab`: a schedule as a crontab block and back (pure);
- `systemd`: a schedule as `.service`/`.timer` units and back, and the change to a directory;
- `stores`: where they live (`crontab -l`/`crontab -`, a crontab file, a unit directory);
- `defaults`: the named default sets, the `standby stream` service, `Invocation` (absolute
  program and config), finding the executable;
- `install`: `CrontabTarget`, `SystemdTarget`, their plans and outcomes.

`zmschedulebackup` (the classic module) fits it like this, with zmbackup's absolute path::

    target = CrontabTarget(UserCrontab())                  # the zimbra user's crontab
    zmbackup = locate_program("zmbackup", argv0=sys.argv[0], executable=sys.executable)
    # -D: the guide's default (full Sat 1:00, incremental Sun-Fri 1:00, delete > 1m at 0:00)
    s = default_schedule("zimbra-classic", owner="classic", prefix=(zmbackup,))
    # -R f "0 1 * * 7" i "0 1 * * 1-6" d 1m "0 0 * * *"
    s = s.replace([ScheduleEntry("f", "0 1 * * 7", (zmbackup, "-f", "-a", "all")),
                   ScheduleEntry("i", "0 1 * * 1-6", (zmbackup, "-i")),
                   ScheduleEntry("d", "0 0 * * *", (zmbackup, "-del", "1m"))])
    # -A f "0 1 * * 4": add to what is installed
    s = installed_schedule(target, "classic").add(
        ScheduleEntry("f", "0 1 * * 4", (zmbackup, "-f", "-a", "all")))
    plan = target.plan_install(s)       # a dry run prints plan.preview()
    print("\\n".join(plan.execute().describe()))
    # -q: installed_schedule(target, "classic").entries; -s: render_block(that schedule)

and `standby stream` as a long-running unit (`stream_schedule` builds this one)::

    run = Invocation(program, config)
    s = Schedule("stream", (ScheduleEntry.long_running("stream", run.argv("stream")),))
    SystemdTarget(UnitDir(Path("/etc/systemd/system")), activate=True).plan_install(s).execute()
"""

from standby.schedule.cron import ALIASES, FIELDS, next_run, validate_cron
from standby.schedule.crontab import (
    cron_escape,
    cron_unescape,
    crontab_install,
    crontab_remove,
    crontab_schedule,
    crontab_schedules,
    render_block,
)
from standby.schedule.defaults import (
    DEFAULT_SETS,
    STREAM_OWNER,
    DefaultEntry,
    Invocation,
    default_schedule,
    locate_program,
    standby_schedule,
    stream_schedule,
)
from standby.schedule.install import (
    CrontabPlan,
    CrontabTarget,
    Outcome,
    Plan,
    SystemdTarget,
    Target,
    UnitPlan,
    installed_schedule,
    saved_schedule,
)
from standby.schedule.model import Schedule, ScheduleEntry
from standby.schedule.shell import sh_join, sh_split_and
from standby.schedule.stores import CrontabFile, CrontabStore, UnitDir, UnitStore, UserCrontab
from standby.schedule.systemd import (
    UnitChange,
    cron_to_oncalendar,
    owned_units,
    render_units,
    systemd_quote,
    unit_stems,
    units_install,
    units_remove,
    units_schedules,
)

__all__ = [
    "ALIASES", "DEFAULT_SETS", "FIELDS", "STREAM_OWNER", "CrontabFile", "CrontabPlan",
    "CrontabStore", "CrontabTarget", "DefaultEntry", "Invocation", "Outcome", "Plan", "Schedule",
    "ScheduleEntry", "SystemdTarget", "Target", "UnitChange", "UnitDir", "UnitPlan", "UnitStore",
    "UserCrontab", "cron_escape", "cron_to_oncalendar", "cron_unescape", "crontab_install",
    "crontab_remove", "crontab_schedule", "crontab_schedules", "default_schedule",
    "installed_schedule", "locate_program", "next_run", "owned_units", "render_block",
    "render_units", "saved_schedule", "sh_join", "sh_split_and", "standby_schedule",
    "stream_schedule", "systemd_quote", "unit_stems", "units_install", "units_remove",
    "units_schedules", "validate_cron",
]
