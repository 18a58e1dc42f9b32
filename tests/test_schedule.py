"""Schedules: cron validation, crontab block round trips (Hypothesis), what cron and /bin/sh
really run, install/remove around foreign lines, systemd units (checked with systemd-analyze
where it exists), the CLI on crontab files and unit directories, and the real `crontab`."""

from __future__ import annotations

import json
import re
import shutil
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from standby import _process
from standby import schedule as sched
from standby._process import Command
from standby.cli import common
from standby.cli import main as cli_main
from standby.errors import FormatError, NotFound, StateConflict, UsageError
from standby.schedule import (
    CrontabFile,
    CrontabTarget,
    Schedule,
    ScheduleEntry,
    UnitDir,
    UserCrontab,
)
from tests.services import REQUIRED

# ---------------------------------------------------------------------------------------------
# Strategies

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def field_values(i: int, *, hi: int | None = None) -> st.SearchStrategy[str]:
    lo, top = _RANGES[i]
    top = hi if hi is not None else top
    num = st.integers(lo, top)
    single = num.map(str)
    if i == 3:
        single = single | st.sampled_from(_MONTHS)
    if i == 4:
        single = single | st.sampled_from(_DAYS)
    rng = st.tuples(num, num).map(lambda t: f"{min(t)}-{max(t)}")
    step = st.tuples(st.just("*") | rng, st.integers(1, top)).map(lambda t: f"{t[0]}/{t[1]}")
    listed = st.lists(single | rng | step, min_size=1, max_size=3).map(",".join)
    return st.just("*") | listed


@st.composite
def crons(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(sorted(sched.ALIASES)))
    expr = " ".join(draw(field_values(i)) for i in range(5))
    try:
        return sched.validate_cron(expr)
    except UsageError:
        assume(False)
        raise


# Any character a line can hold, with the ones cron and /bin/sh treat specially drawn often.
words = st.text(st.characters(codec="utf-8", exclude_characters="\n\r\0")
                | st.sampled_from(list("\\%'\" $&|;#*~=")), max_size=12)
argvs = st.tuples(words.filter(bool), st.lists(words, max_size=4)).map(
    lambda t: (t[0], *t[1]))
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True)
owners = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,12}", fullmatch=True)
entries = st.builds(ScheduleEntry, names, crons(), argvs, st.just(()) | argvs)
schedules = st.builds(Schedule, owners, st.lists(entries, max_size=4).map(tuple))
# A user's crontab: any lines that are not standby markers.
foreign_lines = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="\n\r\0"),
            max_size=30).filter(lambda s: not s.strip().startswith(("# BEGIN standby",
                                                                     "# END standby"))),
    max_size=6)


# ---------------------------------------------------------------------------------------------
# Round trips


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
@example(Schedule("o", (ScheduleEntry("e", "* * * * *", ("x", "a\\\\b", "\\%", "\\\\%")),)))
def test_block_round_trip(s: Schedule) -> None:
    assert sched.crontab_schedules(sched.render_block(s)) == [s]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(foreign_lines, foreign_lines, schedules, schedules)
def test_install_and_remove_keep_foreign_lines(
    head: list[str], tail: list[str], s: Schedule, s2: Schedule
) -> None:
    other = Schedule("someone-else" if s.owner != "someone-else" else "other",
                     (ScheduleEntry("x", "1 2 * * *", ("/bin/true",)),))
    original = "".join(line + "\n" for line in head) + sched.render_block(other) + \
        "".join(line + "\n" for line in tail)
    installed = sched.crontab_install(original, s)
    assert [x.owner for x in sched.crontab_schedules(installed)] == [other.owner, s.owner]
    assert sched.crontab_schedule(installed, s.owner) == s
    assert installed.startswith(original)  # appended; nothing before it changed
    assert sched.crontab_install(installed, s) == installed  # idempotent
    # Replacing keeps the block where it was.
    s2 = Schedule(s.owner, s2.entries)
    replaced = sched.crontab_install(installed, s2)
    assert replaced.startswith(original) and sched.crontab_schedule(replaced, s.owner) == s2
    assert sched.crontab_remove(replaced, s.owner) == original
    assert sched.crontab_remove(original, s.owner) == original


def test_install_adds_the_missing_last_newline() -> None:
    s = Schedule("o", (ScheduleEntry("a", "0 * * * *", ("/bin/true",)),))
    text = sched.crontab_install("5 4 * * * /usr/bin/x", s)
    assert text.startswith("5 4 * * * /usr/bin/x\n# BEGIN standby o\n")
    assert sched.crontab_remove(text, "o") == "5 4 * * * /usr/bin/x\n"


# ---------------------------------------------------------------------------------------------
# What cron and /bin/sh really run


def vixie_translate(cmd: str) -> tuple[str, str | None]:
    """Vixie cron's do_command.c loop, transcribed: (what /bin/sh gets, standard input)."""
    buf = list(cmd)
    p = 0
    escaped = False
    i = 0
    stdin = None
    while i < len(buf):
        ch = buf[i]
        if p != i:
            buf[p] = ch
        if escaped:
            if ch in ("%", "\\"):
                p -= 1
                buf[p] = ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            stdin = "".join(buf[i + 1:])
            break
        i += 1
        p += 1
    return "".join(buf[:p]), stdin


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(words, max_size=5), st.lists(words, max_size=3))
@example(["a\\\\b", "\\%", "\\\\%", "%%", "\\"], ["it's", "$HOME"])
def test_cron_then_sh_run_exactly_the_argv(first: list[str], second: list[str]) -> None:
    printf = ("printf", "%s\\0")
    # printf repeats its format for every argument, and runs it once without any: end both
    # commands with a sentinel.
    entry = ScheduleEntry("probe", "* * * * *", (*printf, *first, "|"), (*printf, *second, "|"))
    line = sched.render_block(Schedule("o", (entry,))).split("\n")[3]
    command = line.split(" ", 5)[5]
    shell_text, stdin = vixie_translate(command)
    assert stdin is None
    out = _process.run(Command.of("/bin/sh", "-c", shell_text)).stdout.decode()
    assert out.split("\0")[:-1] == [*first, "|", *second, "|"]


def test_a_failing_command_skips_the_follow_up() -> None:
    entry = ScheduleEntry("x", "* * * * *", ("false",), ("echo", "shipped"))
    shell_text, _ = vixie_translate(entry.command())
    result = _process.run(Command.of("/bin/sh", "-c", shell_text), check=False)
    assert result.returncode != 0 and result.stdout == b""


@pytest.mark.parametrize("argv", [("if", "x"), ("A=b", "x"), ("!",), ("{",)])
def test_words_sh_would_misread_are_quoted(argv: tuple[str, ...]) -> None:
    e = ScheduleEntry("x", "* * * * *", argv)
    assert e.command().startswith("'")
    assert sched.crontab_schedules(sched.render_block(Schedule("o", (e,))))[0].entries == (e,)


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize("expr, message", [
    ("0 1* * 0-5", "needs exactly 5 fields.*'1\\*' looks like two fields run together"),
    ("0 25 * * *", "field 2 \\(hour\\) '25': out of range 0-23"),
    ("61 * * * *", "field 1 \\(minute\\) '61': out of range 0-59"),
    ("0 0 32 * *", "field 3 \\(day-of-month\\) '32': out of range 1-31"),
    ("0 0 * 13 *", "field 4 \\(month\\) '13': out of range 1-12"),
    ("0 0 * * 8", "field 5 \\(day-of-week\\) '8': out of range 0-7"),
    ("0 0 * * 1#2", "field 5 \\(day-of-week\\) '1#2' uses syntax cron does not accept"),
    ("0 0 L * *", "field 3 \\(day-of-month\\) 'L' uses syntax"),
    ("0 0 ? * *", "field 3 .* uses syntax"),
    ("5/10 * * * *", "a step needs \\* or a range"),
    ("0 0 * * fri-mon", "runs backwards"),
    ("0 0 30 2 *", "never match"),
    ("0 0 * foo *", "field 4 \\(month\\) 'foo'"),
    ("* * * * * *", "got 6"),
    ("", "got 0"),
    ("@reboot", "runs once at boot"),
    ("@often", "unknown @-alias"),
])
def test_bad_cron_expressions_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        sched.validate_cron(expr)


@pytest.mark.parametrize("expr, normal", [
    ("0  1 * *   6", "0 1 * * 6"), ("@DAILY", "@daily"), ("*/15 9-17 * jan-mar MON-FRI",
                                                           "*/15 9-17 * jan-mar MON-FRI"),
    ("0 0 29 2 *", "0 0 29 2 *"), ("0 0 * * 7", "0 0 * * 7"),
])
def test_good_cron_expressions(expr: str, normal: str) -> None:
    assert sched.validate_cron(expr) == normal


def test_entry_and_schedule_validation() -> None:
    with pytest.raises(UsageError, match="line break"):
        ScheduleEntry("x", "* * * * *", ("echo", "a\nb"))
    with pytest.raises(UsageError, match="has no command"):
        ScheduleEntry("x", "* * * * *", ())
    with pytest.raises(UsageError, match="entry name"):
        ScheduleEntry("bad name", "* * * * *", ("x",))
    with pytest.raises(UsageError, match="owner"):
        Schedule("has space")
    with pytest.raises(UsageError, match="owner"):
        Schedule("tmpl@x")  # '@' means a template in systemd unit names


@pytest.mark.parametrize("line, message", [
    ("0 * * * * /usr/bin/x >> /var/log/x 2>&1", "unquoted shell syntax '>'"),
    ("0 * * * * /usr/bin/x; /usr/bin/y", "unquoted shell syntax ';'"),
    ("0 * * * * /usr/bin/x $HOME", "unquoted shell syntax '\\$'"),
    ("0 * * * * FOO=1 /usr/bin/x", "is shell syntax"),
    ("0 * * * * /usr/bin/x 50%", "unescaped '%'"),
    ("0 * * * * /usr/bin/x 'open", "unterminated single quote"),
    ("0 * * * * a && b && c", "more than one '&&'"),
    ("0 * * * * && b", "without a command before it"),
    ("0 * * * *", "not a cron line"),
    ("0 25 * * * /usr/bin/x", "out of range"),
])
def test_hand_edited_lines_that_cannot_be_managed(line: str, message: str) -> None:
    text = f"# BEGIN standby o\n{line}\n# END standby o\n"
    with pytest.raises(FormatError, match=message):
        sched.crontab_schedules(text)


def test_hand_edited_lines_that_can() -> None:
    text = ('# BEGIN standby o\n\n# a note\n'
            '7 * * * *\t/usr/bin/x "two words" a\\ b \'c\'"d"&&/usr/bin/y\n# END standby o\n')
    (s,) = sched.crontab_schedules(text)
    assert s.entries == (ScheduleEntry("custom", "7 * * * *",
                                       ("/usr/bin/x", "two words", "a b", "cd"), ("/usr/bin/y",)),)


@pytest.mark.parametrize("text, message", [
    ("# BEGIN standby o\n0 * * * * /x\n", "has no END line"),
    ("0 * * * * /x\n# END standby o\n", "without its BEGIN"),
    ("# BEGIN standby o\n# BEGIN standby p\n# END standby p\n# END standby o\n",
     "starts inside the block"),
    ("# BEGIN standby o\n# END standby o\n# BEGIN standby o\n# END standby o\n",
     "two standby blocks"),
])
def test_broken_markers_stop_install(text: str, message: str) -> None:
    s = Schedule("o", (ScheduleEntry("a", "0 * * * *", ("/bin/true",)),))
    with pytest.raises(FormatError, match=message):
        sched.crontab_install(text, s)


# ---------------------------------------------------------------------------------------------
# Defaults


def test_standby_defaults() -> None:
    s = sched.standby_schedule(program="/opt/bin/standby", config="/etc/standby.toml",
                               then=("standby", "ship", "--to", "s3://b/p"))
    prefix = ("/opt/bin/standby", "--config", "/etc/standby.toml")
    assert s.owner == "snapshot"
    assert [(e.name, e.cron) for e in s.entries] == [
        ("set", "0 * * * *"), ("redolog", "15,30,45 * * * *"), ("prune", "40 3 * * *")]
    assert s.entries[0].argv == (*prefix, "snapshot", "set")
    assert s.entries[0].then == (*prefix, "ship", "--to", "s3://b/p")
    assert s.entries[1].then == s.entries[0].then and s.entries[2].then == ()
    custom = sched.standby_schedule(program="/p", config="/c", crons={"set": "5 * * * *"},
                                    then=("/usr/local/bin/ship",))
    assert custom.entries[0].cron == "5 * * * *"
    assert custom.entries[0].then == ("/usr/local/bin/ship",)
    with pytest.raises(UsageError, match="no entry 'weekly'"):
        sched.standby_schedule(program="/p", config="/c", crons={"weekly": "0 0 * * 0"})


def test_zimbra_classic_defaults_as_in_the_guide() -> None:
    s = sched.default_schedule("zimbra-classic", owner="zmschedulebackup",
                               prefix=("/opt/zimbra/bin/zmbackup",))
    body = [ln for ln in sched.render_block(s).splitlines() if not ln.startswith("#")]
    assert body == ["0 1 * * 6 /opt/zimbra/bin/zmbackup -f -a all",
                    "0 1 * * 0-5 /opt/zimbra/bin/zmbackup -i",
                    "0 0 * * * /opt/zimbra/bin/zmbackup -del 1m"]
    # what zmschedulebackup -A f "0 1 * * 4" will do with the model
    more = s.add(ScheduleEntry("f", "0 1 * * 4", ("/opt/zimbra/bin/zmbackup", "-f", "-a", "all")))
    assert len(more.named("f")) == 2 and len(more.without("f").entries) == 2
    with pytest.raises(UsageError, match="no default schedule named"):
        sched.default_schedule("nightly", owner="o", prefix=("x",))


# ---------------------------------------------------------------------------------------------
# systemd


@pytest.mark.parametrize("cron, calendar", [
    ("0 1 * * 6", "Sat *-*-* 01:00:00"),
    ("0 1 * * 0-5", "Mon..Fri,Sun *-*-* 01:00:00"),
    ("0 1 * * 7", "Sun *-*-* 01:00:00"),
    ("15,30,45 * * * *", "*-*-* *:15,30,45:00"),
    ("*/20 8-18 * * mon-fri", "Mon..Fri *-*-* 08..18:00,20,40:00"),
    ("0 0 1,15 * *", "*-*-01,15 00:00:00"),
    ("0 12 * jan-mar sun", "Sun *-01..03-* 12:00:00"),
    ("0 0 */10 * 1", "Mon *-*-01,11,21,31 00:00:00"),
    ("@weekly", "Sun *-*-* 00:00:00"),
])
def test_cron_to_oncalendar(cron: str, calendar: str) -> None:
    assert sched.cron_to_oncalendar(cron) == calendar


def test_either_day_rule_cannot_be_a_timer() -> None:
    with pytest.raises(UsageError, match="day-of-month OR the day-of-week"):
        sched.cron_to_oncalendar("0 0 1 * 1")
    s = Schedule("o", (ScheduleEntry("a", "0 0 1 * 1", ("/bin/true",)),))
    with pytest.raises(UsageError, match="split it into two entries"):
        sched.render_units(s)


def test_units_render_and_read_back() -> None:
    s = sched.standby_schedule(program="/opt/bin/standby", config="/etc/s b.toml",
                               then=("/usr/bin/ship", "100%", "$HOME"))
    s = s.add(ScheduleEntry("set", "30 * * * *", ("/opt/bin/standby", "snapshot", "set")))
    files = sched.render_units(s)
    assert sorted(files) == sorted(f"standby-snapshot-{n}.{k}" for n in
                                   ("set", "redolog", "prune", "set-2")
                                   for k in ("service", "timer"))
    service = files["standby-snapshot-set.service"]
    assert service.startswith("# BEGIN standby snapshot\n")
    assert ('ExecStart=/opt/bin/standby --config "/etc/s b.toml" snapshot set\n'
            'ExecStart=/usr/bin/ship "100%%" "$$HOME"\n') in service
    assert "Type=oneshot" in service
    timer = files["standby-snapshot-redolog.timer"]
    assert "OnCalendar=*-*-* *:15,30,45:00\n" in timer and "AccuracySec=1s" in timer
    assert "Unit=standby-snapshot-redolog.service" in timer
    assert sched.units_schedules(files) == [s]


def test_unit_dir_install_and_remove_touch_only_ours(tmp_path: Path) -> None:
    (tmp_path / "standby-mine.service").write_text("[Service]\nExecStart=/bin/true\n")
    (tmp_path / "other.timer").write_text("[Timer]\n")
    d = UnitDir(tmp_path)
    big = sched.standby_schedule(program="/p", config="/c")
    d.apply(sched.units_install(d.read_all(), big, str(tmp_path)))
    assert len(list(tmp_path.glob("standby-snapshot-*"))) == 6
    small = big.without("prune")
    change = sched.units_install(d.read_all(), small, str(tmp_path))
    assert change.delete == ("standby-snapshot-prune.service", "standby-snapshot-prune.timer")
    before, after = change.activation()
    assert [c.argv for c in before] == [("systemctl", "disable", "--now",
                                         "standby-snapshot-prune.timer")]
    assert after[0].argv == ("systemctl", "daemon-reload")
    assert after[1].argv[:3] == ("systemctl", "enable", "--now")
    d.apply(change)
    assert sched.units_schedules(d.read_all()) == [small]
    d.apply(sched.units_remove(d.read_all(), "snapshot", str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.timer", "standby-mine.service"]


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# In CI (STANDBY_REQUIRE_SERVICES=1) a missing tool fails these tests instead of skipping them.
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None and not REQUIRED,
                                           reason="systemd-analyze is not installed")
_ELAPSE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


@needs_systemd_analyze
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_oncalendar_fires_when_cron_does(data: st.DataObject) -> None:
    # One day field starts with '*' ('*' or '*/n'): then cron needs both day fields to match,
    # as OnCalendar does. Days of month stop at 28 so every expression fires within a year.
    fields = [data.draw(field_values(i, hi=28 if i == 2 else None)) for i in range(5)]
    starred = data.draw(st.sampled_from([2, 4]))
    fields[starred] = data.draw(st.just("*") | st.integers(1, 7).map(lambda n: f"*/{n}"))
    try:
        expr = sched.validate_cron(" ".join(fields))
    except UsageError:
        assume(False)
        raise
    calendar = sched.cron_to_oncalendar(expr)
    before = datetime.now(UTC)
    out = _process.run(Command.of("systemd-analyze", "calendar", "--iterations=5", calendar,
                                  env={"TZ": "UTC"})).text
    after = datetime.now(UTC)
    got = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
           for m in _ELAPSE.findall(out)]
    assert len(got) == 5, out
    assert got[0] in (sched.next_run(expr, before), sched.next_run(expr, after))
    it = got[0]
    for nxt in got[1:]:
        it = sched.next_run(expr, it)
        assert it == nxt, (expr, calendar)


def systemd_verify(tmp_path: Path, s: Schedule) -> None:
    """systemd-analyze verify accepts every unit of `s` without a word about them."""
    for name, text in sched.render_units(s).items():
        (tmp_path / name).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir())
    result = _process.run(Command.of("systemd-analyze", "verify", "--man=no", *units),
                          check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert b"standby-" not in result.stderr, result.stderr.decode()


@needs_systemd_analyze
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    systemd_verify(tmp_path, sched.standby_schedule(
        program="/bin/echo", config="/etc/x y.toml",
        then=("/bin/echo", "a$b", "100%", 'q"uo\\te', "it's")))


# ---------------------------------------------------------------------------------------------
# Stores


def test_crontab_file_store(tmp_path: Path) -> None:
    f = CrontabFile(tmp_path / "ct")
    assert f.read() == ""
    f.write("a\n")
    (tmp_path / "ct").chmod(0o600)
    f.write("b\n")
    assert f.read() == "b\n" and stat.S_IMODE((tmp_path / "ct").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["ct"]  # no temporary file left


def test_apply_refuses_a_crontab_changed_meanwhile(tmp_path: Path) -> None:
    f = CrontabFile(tmp_path / "ct")
    s = Schedule("o", (ScheduleEntry("a", "0 * * * *", ("/bin/true",)),))
    plan = CrontabTarget(f).plan_install(s)
    f.write("1 1 * * * /usr/bin/someone-else\n")
    with pytest.raises(StateConflict):
        plan.execute()


def test_user_crontab_commands() -> None:
    assert UserCrontab().list_command().argv == ("crontab", "-l")
    assert UserCrontab().install_command().argv == ("crontab", "-")
    assert UserCrontab(user="zimbra").list_command().argv == ("crontab", "-u", "zimbra", "-l")


def test_user_crontab_against_a_stand_in_program(tmp_path: Path) -> None:
    # A stand-in with crontab's interface: `-l` fails with "no crontab for" until `-` wrote one.
    spool = tmp_path / "spool"
    fake = tmp_path / "crontab"
    fake.write_text(f"""#!/bin/sh
if [ "$1" = -l ]; then
  [ -f {spool} ] || {{ echo "no crontab for tester" >&2; exit 1; }}
  cat {spool}
elif [ "$1" = - ]; then cat > {spool}
else echo "usage" >&2; exit 2; fi
""")
    fake.chmod(0o755)
    store = UserCrontab(program=str(fake))
    assert store.read() == ""
    store.write("x\n")
    assert store.read() == "x\n"
    spool.chmod(0)
    fake.write_text("#!/bin/sh\necho 'crontab: permission denied' >&2\nexit 1\n")
    with pytest.raises(Exception, match="permission denied"):
        store.read()


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "standby.toml"
    p.write_text('server_id = "t"\nstate_dir = "state"\n' + "".join(
        f'[volumes.{v}]\npath = "vol/{v}"\n' for v in ("db", "blob", "index", "redolog")))
    return p


runner = CliRunner()
FOREIGN = "MAILTO=ops@example.com\n# nightly home backup\n5 4 * * * /usr/bin/backup-home\n"


def cli(*args: str) -> Result:
    return runner.invoke(cli_main.app, list(args))


def test_cli_install_show_save_remove(cfg: Path, tmp_path: Path) -> None:
    ct = tmp_path / "crontab"
    ct.write_text(FOREIGN)
    prog = tmp_path / "bin" / "standby"
    r = cli("--config", str(cfg), "schedule", "install", "--crontab-file", str(ct), "--dry-run",
            "--then", "standby ship", "--program", str(prog))
    assert r.exit_code == 0, r.output
    assert ct.read_text() == FOREIGN  # a dry run writes nothing
    out = r.output
    assert out.startswith(FOREIGN)
    assert f"0 * * * * {prog} --config {cfg} snapshot set && {prog} --config {cfg} ship\n" in out

    r = cli("--config", str(cfg), "schedule", "install", "--crontab-file", str(ct),
            "--program", str(prog), "--set-cron", "5 * * * *")
    assert r.exit_code == 0 and "installed schedule 'snapshot'" in r.output
    assert ct.read_text().startswith(FOREIGN)

    r = cli("schedule", "show", "--crontab-file", str(ct), "--json")
    (shown,) = json.loads(r.output)
    assert shown["owner"] == "snapshot"
    assert [(e["name"], e["cron"]) for e in shown["entries"]] == [
        ("set", "5 * * * *"), ("redolog", "15,30,45 * * * *"), ("prune", "40 3 * * *")]
    assert shown["entries"][0]["argv"] == [str(prog), "--config", str(cfg), "snapshot", "set"]
    assert "next_run" in shown["entries"][0]
    r = cli("schedule", "show", "--crontab-file", str(ct))
    assert "set      5 * * * *" in r.output

    saved = tmp_path / "saved.cron"
    assert cli("schedule", "save", str(saved), "--crontab-file", str(ct)).exit_code == 0
    r = cli("schedule", "remove", "--crontab-file", str(ct))
    assert r.exit_code == 0 and ct.read_text() == FOREIGN
    r = cli("schedule", "install", "--from", str(saved), "--crontab-file", str(ct))
    assert r.exit_code == 0, r.output
    assert sched.crontab_schedules(ct.read_text()) == sched.crontab_schedules(saved.read_text())
    assert ct.read_text().startswith(FOREIGN)


def test_cli_default_replaces_a_custom_schedule(cfg: Path, tmp_path: Path) -> None:
    ct = tmp_path / "crontab"
    cli("--config", str(cfg), "schedule", "install", "--crontab-file", str(ct),
        "--program", "/p/standby", "--prune-cron", "0 5 * * *")
    r = cli("--config", str(cfg), "schedule", "default", "--crontab-file", str(ct),
            "--program", "/p/standby")
    assert r.exit_code == 0, r.output
    (s,) = sched.crontab_schedules(ct.read_text())
    assert s.named("prune")[0].cron == "40 3 * * *"


def test_cli_systemd(cfg: Path, tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "foreign.service").write_text("[Service]\n")
    r = cli("--config", str(cfg), "schedule", "install", "--systemd", "--unit-dir", str(units),
            "--program", "/p/standby", "--dry-run", "--enable")
    assert "# --- would write" in r.output and "would run systemctl daemon-reload" in r.output
    assert sorted(p.name for p in units.iterdir()) == ["foreign.service"]
    r = cli("--config", str(cfg), "schedule", "install", "--systemd", "--unit-dir", str(units),
            "--program", "/p/standby")
    assert r.exit_code == 0 and "next: systemctl daemon-reload" in r.output
    assert len(list(units.glob("standby-snapshot-*.timer"))) == 3
    r = cli("schedule", "show", "--systemd", "--unit-dir", str(units), "--json")
    assert [e["name"] for e in json.loads(r.output)[0]["entries"]] == ["set", "redolog", "prune"]
    assert cli("schedule", "remove", "--systemd", "--unit-dir", str(units)).exit_code == 0
    assert sorted(p.name for p in units.iterdir()) == ["foreign.service"]


@pytest.mark.parametrize("args, error", [
    (["schedule", "install", "--set-cron", "0 1* * *"], UsageError),
    (["schedule", "install", "--systemd"], UsageError),  # with --crontab-file, below
    (["schedule", "show", "--owner", "nobody"], NotFound),
    (["schedule", "save", "--owner", "nobody"], NotFound),
    (["schedule", "install", "--then", "'unclosed"], UsageError),
])
def test_cli_errors(cfg: Path, tmp_path: Path, args: list[str], error: type) -> None:
    full = ["--config", str(cfg), *args, "--crontab-file", str(tmp_path / "ct")]
    r = runner.invoke(cli_main.app, full)
    assert isinstance(r.exception, error), (r.output, r.exception)


def test_cli_exit_codes_through_the_edge(cfg: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        common.run(cli_main.app, ["--config", str(cfg), "schedule", "install", "--crontab-file",
                                  str(tmp_path / "ct"), "--redolog-cron", "0 0 * * 9"], "standby")
    assert e.value.code == 2
    assert "field 5 (day-of-week) '9': out of range 0-7" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The real crontab


@pytest.mark.skipif(shutil.which("crontab") is None and not REQUIRED,
                    reason="cron is not installed: only the crontab command building is tested")
def test_real_crontab_install_and_remove(cfg: Path) -> None:
    store = UserCrontab()
    had = _process.run(store.list_command(), check=False).returncode == 0
    previous = store.read()
    owner = f"pytest-{uuid.uuid4().hex[:8]}"
    try:
        store.write(previous + "# pytest foreign line\n7 7 7 7 * /bin/true\n")
        r = cli("--config", str(cfg), "schedule", "install", "--owner", owner,
                "--program", "/bin/true")
        assert r.exit_code == 0, r.output
        text = _process.run(Command.of("crontab", "-l")).text
        assert "7 7 7 7 * /bin/true\n" in text
        assert sched.crontab_schedule(text, owner) is not None
        r = cli("schedule", "show", "--owner", owner, "--json")
        assert json.loads(r.output)[0]["owner"] == owner
        assert cli("schedule", "remove", "--owner", owner).exit_code == 0
        assert store.read() == previous + "# pytest foreign line\n7 7 7 7 * /bin/true\n"
    finally:
        if had:
            store.write(previous)
        else:
            _process.run(Command.of("crontab", "-r"), check=False)
    assert store.read() == previous


def test_the_program_is_this_standby(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from standby.cli import schedule as cli_schedule

    exe = tmp_path / "bin" / "standby"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setattr("sys.argv", [str(exe), "schedule", "install"])
    assert cli_schedule._program(None) == str(exe)
    # Under another launcher (pytest, python -m): the script beside the interpreter.
    monkeypatch.setattr("sys.argv", ["pytest"])
    monkeypatch.setattr("sys.executable", str(tmp_path / "bin" / "python"))
    assert cli_schedule._program(None) == str(exe)
    assert cli_schedule._program(Path("rel/standby")) == str(Path("rel/standby").absolute())


def test_next_run_follows_cron_day_rules() -> None:
    start = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)  # a Monday
    # `*/10` counts as starred: cron needs both days to match (the 11th of March is a Monday).
    assert sched.next_run("0 0 */10 * 1", start) == datetime(2024, 3, 11, tzinfo=UTC)
    # Neither starred: either day matches (Monday the 8th).
    assert sched.next_run("0 0 10 * 1", start) == datetime(2024, 1, 8, tzinfo=UTC)
    assert sched.next_run("@daily", start) == datetime(2024, 1, 2, tzinfo=UTC)
