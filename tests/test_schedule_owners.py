"""Schedules of several owners side by side: the two targets (a crontab file, a unit directory)
under one contract, long-running entries (`standby stream`), systemctl around a change, the
classic module's `zmschedulebackup` through the public API, and `--then`'s help text."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from standby import schedule as sched
from standby._process import Command
from standby.cli import main as cli_main
from standby.errors import StateConflict, UsageError
from standby.schedule import (
    CrontabFile,
    CrontabTarget,
    Invocation,
    Schedule,
    ScheduleEntry,
    SystemdTarget,
    UnitDir,
)
from tests.test_schedule import needs_systemd_analyze, schedules, systemd_verify

RUN = Invocation("/opt/standby/bin/standby", "/etc/standby.toml")
ZMBACKUP = "/opt/standby/bin/zmbackup"


def snapshot_owner() -> Schedule:
    return sched.standby_schedule(program=RUN.program, config=RUN.config)


def ship_owner() -> Schedule:
    return Schedule("ship", (ScheduleEntry("ship", "5,20,35,50 * * * *", RUN.argv("ship")),))


def classic_owner() -> Schedule:
    return sched.default_schedule("zimbra-classic", owner="classic", prefix=(ZMBACKUP,))


def stream_owner() -> Schedule:
    return Schedule("stream", (ScheduleEntry.long_running("stream", RUN.argv("stream")),))


# ---------------------------------------------------------------------------------------------
# One contract, both targets


def crontab_target(tmp: Path) -> tuple[CrontabTarget, Callable[[], dict[str, str]]]:
    path = tmp / "crontab"
    path.write_text("MAILTO=ops@example.com\n5 4 * * * /usr/bin/backup-home\n")
    return CrontabTarget(CrontabFile(path)), lambda: {"crontab": path.read_text()}


def systemd_target(tmp: Path) -> tuple[SystemdTarget, Callable[[], dict[str, str]]]:
    units = tmp / "units"
    units.mkdir()
    (units / "backup-home.timer").write_text("[Timer]\nOnCalendar=daily\n")
    return SystemdTarget(UnitDir(units)), lambda: {p.name: p.read_text()
                                                   for p in sorted(units.iterdir())}


TARGETS = {"crontab": crontab_target, "systemd": systemd_target}


_BLOCK = re.compile(r"(?ms)^# BEGIN standby (\S+)\n.*?^# END standby \1\n")


def _blocks(text: str) -> dict[str, str]:
    """Each owner's block of a crontab, as text."""
    return {m.group(1): m.group(0) for m in _BLOCK.finditer(text)}


def _owned(state: dict[str, str], owner: str) -> dict[str, str]:
    """What `owner` has in a target's state: its crontab block, or its unit files."""
    if "crontab" in state:
        block = _blocks(state["crontab"]).get(owner)
        return {"block": block} if block else {}
    return {n: t for n, t in state.items() if t.startswith(f"# BEGIN standby {owner}\n")}


def _foreign(state: dict[str, str]) -> str:
    """What no standby owner has: the crontab outside every block, or the other unit files."""
    if "crontab" in state:
        return _BLOCK.sub("", state["crontab"])
    return json.dumps({n: t for n, t in state.items() if not t.startswith("# BEGIN standby ")})


@pytest.mark.parametrize("kind", TARGETS)
def test_owners_install_and_remove_without_touching_each_other(kind: str, tmp_path: Path) -> None:
    target, state = TARGETS[kind](tmp_path)
    foreign = _foreign(state())
    owners = [snapshot_owner(), ship_owner(), classic_owner()]
    for s in owners:
        assert target.plan_install(s).execute().action == "installed"
    installed = target.installed()
    assert sorted(installed, key=lambda s: s.owner) == sorted(owners, key=lambda s: s.owner)
    full = state()
    # Replacing and removing one owner leaves every other owner's lines or files as they were.
    for s in owners:
        smaller = s.replace(s.entries[:1])
        target.plan_install(smaller).execute()
        assert sched.installed_schedule(target, s.owner) == smaller
        for other in owners:
            if other.owner != s.owner:
                assert _owned(state(), other.owner) == _owned(full, other.owner)
        target.plan_remove(s.owner).execute()
        assert _owned(state(), s.owner) == {}
        assert s.owner not in [x.owner for x in target.installed()]
        target.plan_install(s).execute()
        assert _owned(state(), s.owner) == _owned(full, s.owner)
    assert _foreign(state()) == foreign
    for s in owners:
        target.plan_remove(s.owner).execute()
    assert target.installed() == [] and _foreign(state()) == foreign


@pytest.mark.parametrize("kind", TARGETS)
def test_a_plan_writes_nothing_until_executed(kind: str, tmp_path: Path) -> None:
    target, state = TARGETS[kind](tmp_path)
    before = state()
    plan = target.plan_install(snapshot_owner())
    preview = "\n".join(plan.preview())
    assert state() == before
    assert "snapshot set" in preview
    outcome = plan.execute()
    assert outcome.action == "installed" and outcome.owner == "snapshot"
    after = state()
    if kind == "crontab":
        assert preview == after["crontab"]  # the dry run shows exactly what is written
    else:
        for name, text in after.items():
            if name not in before:
                assert f"would write {tmp_path / 'units' / name}\n{text}" in preview
    # Planned again with nothing to change: a crontab says so.
    again = target.plan_install(snapshot_owner()).execute()
    assert again.action == ("unchanged" if kind == "crontab" else "installed")
    assert state() == after


def test_a_unit_file_of_another_owner_is_refused(tmp_path: Path) -> None:
    # "a-b" + "c" and "a" + "b-c" both name standby-a-b-c: the second must not overwrite.
    target = SystemdTarget(UnitDir(tmp_path))
    target.plan_install(Schedule("a-b", (ScheduleEntry("c", "0 * * * *", ("/bin/true",)),))) \
        .execute()
    held = {p.name: p.read_text() for p in tmp_path.iterdir()}
    with pytest.raises(StateConflict, match="belongs to schedule 'a-b'"):
        target.plan_install(Schedule("a", (ScheduleEntry("b-c", "0 * * * *", ("/bin/x",)),)))
    (tmp_path / "standby-x-y.service").write_text("[Service]\nExecStart=/bin/mine\n")
    with pytest.raises(StateConflict, match="someone else"):
        target.plan_install(Schedule("x", (ScheduleEntry("y", "0 * * * *", ("/bin/x",)),)))
    assert {p.name: p.read_text() for p in tmp_path.iterdir() if p.name in held} == held


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules, schedules)
def test_units_install_never_touches_another_owners_files(mine: Schedule, other: Schedule) -> None:
    other = Schedule(other.owner + "-o", other.entries)
    assume(mine.owner != other.owner)
    try:
        existing = sched.render_units(other)
        change = sched.units_install(existing, mine, "/units")
    except UsageError:
        return  # a cron expression with no OnCalendar equal: refused before anything
    except StateConflict:
        assert set(sched.render_units(mine)) & set(existing)
        return
    theirs = set(existing)
    assert not theirs & set(change.write) and not theirs & set(change.delete)
    assert not theirs & {*change.stop, *change.start, *change.restart}
    removed = sched.units_remove({**existing, **change.write}, mine.owner, "/units")
    assert set(removed.delete) == set(change.write)


# ---------------------------------------------------------------------------------------------
# Long-running entries (standby stream)


long_running = st.builds(ScheduleEntry.long_running,
                         st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True),
                         st.lists(st.text(st.characters(codec="utf-8",
                                                        exclude_characters="\n\r\0"),
                                          min_size=1, max_size=8), min_size=1, max_size=3))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules, st.lists(long_running, max_size=2))
def test_units_round_trip_with_long_running_entries(s: Schedule, extra: list[ScheduleEntry]) \
        -> None:
    s = s.add(*extra)
    try:
        files = sched.render_units(s)
    except UsageError:
        return  # both day fields restricted: no OnCalendar equal (tested on its own)
    assert sched.units_schedules(files) == ([s] if s.entries else [])  # no entry, no unit
    timers = [n for n in files if n.endswith(".timer")]
    assert len(timers) == sum(e.timed for e in s.entries)
    assert len(files) - len(timers) == len(s.entries)


def test_a_long_running_entry_is_a_service_without_a_timer() -> None:
    files = sched.render_units(stream_owner())
    assert list(files) == ["standby-stream-stream.service"]
    unit = files["standby-stream-stream.service"]
    assert "Type=simple\n" in unit and "Restart=on-failure\n" in unit
    assert "WantedBy=multi-user.target\n" in unit and "[Timer]" not in unit
    assert "ExecStart=/opt/standby/bin/standby --config /etc/standby.toml stream\n" in unit
    assert sched.units_schedules(files) == [stream_owner()]


def test_cron_cannot_keep_a_job_running(tmp_path: Path) -> None:
    target = CrontabTarget(CrontabFile(tmp_path / "ct"))
    with pytest.raises(UsageError, match="install it as a systemd unit"):
        target.plan_install(stream_owner())
    assert not (tmp_path / "ct").exists()
    with pytest.raises(UsageError, match="no end to follow up on"):
        ScheduleEntry("stream", None, ("/bin/stream",), ("/bin/ship",))
    with pytest.raises(UsageError, match="long-running entry"):
        ScheduleEntry("stream", "@reboot", ("/bin/stream",))


@needs_systemd_analyze
def test_systemd_accepts_a_long_running_unit(tmp_path: Path) -> None:
    systemd_verify(tmp_path, Schedule("stream", (ScheduleEntry.long_running(
        "stream", ("/bin/echo", "--config", "/etc/a b.toml", "100%", "$x")),)))


class Recorder:
    """Records the commands it is given with the unit files present at that moment."""

    def __init__(self, units: Path) -> None:
        self.units = units
        self.calls: list[tuple[tuple[str, ...], list[str]]] = []

    def __call__(self, cmd: Command) -> None:
        self.calls.append((cmd.argv, sorted(p.name for p in self.units.iterdir())))


def test_systemctl_stops_starts_and_restarts_around_the_files(tmp_path: Path) -> None:
    run = Recorder(tmp_path)
    target = SystemdTarget(UnitDir(tmp_path), activate=True)
    mixed = stream_owner().add(ScheduleEntry("compact", "0 4 * * *", RUN.argv("compact")))
    target.plan_install(mixed).execute(run)
    files = ["standby-stream-compact.service", "standby-stream-compact.timer",
             "standby-stream-stream.service"]
    assert run.calls == [
        (("systemctl", "daemon-reload"), files),  # after the files are written
        (("systemctl", "enable", "--now", "standby-stream-compact.timer",
          "standby-stream-stream.service"), files)]
    run.calls.clear()
    target.plan_install(mixed).execute(run)  # nothing changed: nothing restarted
    assert [c[:2] for c, _ in run.calls] == [("systemctl", "daemon-reload"),
                                              ("systemctl", "enable")]
    run.calls.clear()
    changed = Schedule("stream", (ScheduleEntry.long_running(
        "stream", RUN.argv("stream", "--target", "file:///srv/t")), mixed.entries[1]))
    target.plan_install(changed).execute(run)
    assert run.calls[-1][0] == ("systemctl", "restart", "standby-stream-stream.service")
    run.calls.clear()
    # The stream becomes a timed job: its running service is stopped before the files change.
    timed = Schedule("stream", (ScheduleEntry("stream", "*/5 * * * *", RUN.argv("stream")),))
    target.plan_install(timed).execute(run)
    assert run.calls[0] == (("systemctl", "disable", "--now", "standby-stream-compact.timer",
                             "standby-stream-stream.service"), files)
    assert run.calls[-1][0] == ("systemctl", "enable", "--now", "standby-stream-stream.timer")
    run.calls.clear()
    outcome = target.plan_remove("stream").execute(run)
    assert run.calls[0] == (("systemctl", "disable", "--now", "standby-stream-stream.timer"),
                            ["standby-stream-stream.service", "standby-stream-stream.timer"])
    assert run.calls[1] == (("systemctl", "daemon-reload"), [])
    assert outcome.describe() == [f"removed schedule 'stream' in {tmp_path}: 0 units written, "
                                  "2 removed"]


def test_without_activation_systemctl_is_left_to_the_user(tmp_path: Path) -> None:
    run = Recorder(tmp_path)
    outcome = SystemdTarget(UnitDir(tmp_path)).plan_install(stream_owner()).execute(run)
    assert run.calls == []
    assert outcome.describe()[1:] == [
        "next: systemctl daemon-reload",
        "next: systemctl enable --now standby-stream-stream.service"]


def test_unit_dir_writes_only_standby_files(tmp_path: Path) -> None:
    bad = sched.UnitChange(str(tmp_path), {"sshd.service": "[Service]\n"})
    with pytest.raises(UsageError, match="not one of standby's"):
        UnitDir(tmp_path).apply(bad)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# zmschedulebackup through the public API (the classic module builds the command itself)


def test_zmschedulebackup_fits_the_api(tmp_path: Path) -> None:
    ct = tmp_path / "crontab"
    target = CrontabTarget(CrontabFile(ct))
    target.plan_install(snapshot_owner()).execute()
    snapshot_block = _blocks(ct.read_text())["snapshot"]

    def body() -> list[str]:
        block = _blocks(ct.read_text())["classic"]
        return [ln for ln in block.splitlines() if not ln.startswith("#")]

    # -D: the guide's default schedule
    target.plan_install(classic_owner()).execute()
    assert body() == [f"0 1 * * 6 {ZMBACKUP} -f -a all", f"0 1 * * 0-5 {ZMBACKUP} -i",
                      f"0 0 * * * {ZMBACKUP} -del 1m"]
    # -R f "0 1 * * 7" i "0 1 * * 1-6" d 1m "0 0 * * *"
    replaced = classic_owner().replace([
        ScheduleEntry("f", "0 1 * * 7", (ZMBACKUP, "-f", "-a", "all")),
        ScheduleEntry("i", "0 1 * * 1-6", (ZMBACKUP, "-i")),
        ScheduleEntry("d", "0 0 * * *", (ZMBACKUP, "-del", "1m"))])
    target.plan_install(replaced).execute()
    assert body()[0] == f"0 1 * * 7 {ZMBACKUP} -f -a all"
    # -A f "0 1 * * 4"
    added = sched.installed_schedule(target, "classic").add(
        ScheduleEntry("f", "0 1 * * 4", (ZMBACKUP, "-f", "-a", "all")))
    plan = target.plan_install(added)
    assert f"0 1 * * 4 {ZMBACKUP} -f -a all" in plan.preview()[0]  # -A with a dry run
    plan.execute()
    # -q: what is installed, with the next run of each
    q = sched.installed_schedule(target, "classic")
    assert [(e.name, e.cron) for e in q.entries] == [
        ("f", "0 1 * * 7"), ("i", "0 1 * * 1-6"), ("d", "0 0 * * *"), ("f", "0 1 * * 4")]
    assert len(q.named("f")) == 2
    now = datetime(2024, 1, 3, 12, 0, tzinfo=UTC)  # a Wednesday
    assert sched.next_run(q.named("f")[1].cron, now) == datetime(2024, 1, 4, 1, 0, tzinfo=UTC)
    # -s: the schedule saved as text reads back as the same schedule
    assert sched.saved_schedule(sched.render_block(q), source="saved") == q
    # standby's own block never moved
    assert _blocks(ct.read_text())["snapshot"] == snapshot_block


def test_the_package_docstring_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) \
        -> None:
    # The zmschedulebackup example in standby/schedule/__init__.py, run against a crontab file.
    doc = sched.__doc__ or ""
    example = doc.split("with zmbackup's absolute path::\n", 1)[1].split("\n\nand ", 1)[0]
    code = "\n".join(line[4:] for line in example.splitlines())
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "zmbackup").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    ct = CrontabFile(tmp_path / "ct")
    names = {n: getattr(sched, n) for n in sched.__all__}
    names.update(sys=sys, UserCrontab=lambda: ct)
    # -A needs an installed schedule: the example's -D and -R only build values.
    sched.CrontabTarget(ct).plan_install(
        sched.default_schedule("zimbra-classic", owner="classic",
                               prefix=(str(bindir / "zmbackup"),))).execute()
    exec(compile(code, "schedule-docstring", "exec"), names)
    (s,) = sched.crontab_schedules(ct.read())
    assert s.owner == "classic" and [e.name for e in s.entries] == ["f", "i", "d", "f"]
    assert s.entries[3].argv == (str(bindir / "zmbackup"), "-f", "-a", "all")


def test_an_invocation_names_the_absolute_program_and_config() -> None:
    assert RUN.argv("ship") == ("/opt/standby/bin/standby", "--config", "/etc/standby.toml",
                                "ship")
    assert RUN.resolve(("standby", "snapshot", "prune")) == RUN.argv("snapshot", "prune")
    assert RUN.resolve(("/usr/local/bin/notify",)) == ("/usr/local/bin/notify",)
    with pytest.raises(UsageError, match="cannot tell where the zmbackup-none executable is"):
        sched.locate_program("zmbackup-none", argv0="pytest", executable="/nonexistent/python")


# ---------------------------------------------------------------------------------------------
# The CLI


runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(cli_main.app, list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize("command", ["install", "default"])
def test_then_help_names_only_commands_that_exist(command: str) -> None:
    r = cli("schedule", command, "--help")
    assert r.exit_code == 0, r.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert "--then" in text
    examples = re.findall(r"'standby ([a-z][a-z -]*?)'", text)
    assert examples, text
    for words in examples:
        shown = cli(*words.split(), "--help")
        assert shown.exit_code == 0, f"the help suggests 'standby {words}': {shown.output}"


def test_cli_shows_a_long_running_entry(tmp_path: Path) -> None:
    SystemdTarget(UnitDir(tmp_path)).plan_install(stream_owner()).execute()
    r = cli("schedule", "show", "--systemd", "--unit-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert re.search(r"stream +always running +started at boot +/opt/standby/bin/standby",
                     r.output), r.output
    assert "None" not in r.output
    r = cli("schedule", "show", "--systemd", "--unit-dir", str(tmp_path), "--json")
    (entry,) = json.loads(r.output)[0]["entries"]
    assert entry["cron"] is None and entry["next_run"] is None
    r = cli("schedule", "remove", "--owner", "stream", "--systemd", "--unit-dir", str(tmp_path))
    assert r.exit_code == 0 and list(tmp_path.iterdir()) == []
