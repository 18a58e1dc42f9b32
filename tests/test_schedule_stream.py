"""`standby schedule install --stream`: the always-running `standby stream` as a systemd service
of its own owner (`stream`), with the absolute program and config; shown and removed on its own;
refused for cron with a message saying why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from standby import schedule as sched
from standby.cli import common
from standby.cli import main as cli_main
from standby.errors import ConfigError, UsageError
from standby.schedule import Schedule, ScheduleEntry
from tests.test_schedule import needs_systemd_analyze, systemd_verify

PROG = "/opt/standby/bin/standby"
UNIT = "standby-stream-stream.service"
FOREIGN_UNIT = "[Unit]\nDescription=not ours\n[Service]\nExecStart=/bin/true\n"


def config(tmp_path: Path, target: str = "") -> Path:
    p = tmp_path / "standby.toml"
    p.write_text('server_id = "t"\nstate_dir = "state"\n' + "".join(
        f'[volumes.{v}]\npath = "vol/{v}"\n' for v in ("db", "blob", "index", "redolog"))
        + target)
    return p


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return config(tmp_path, '[stream]\ntarget = "s3://acme-standby/zimbra"\n')


@pytest.fixture
def units(tmp_path: Path) -> Path:
    d = tmp_path / "units"
    d.mkdir()
    (d / "foreign.service").write_text(FOREIGN_UNIT)
    return d


runner = CliRunner()


def cli(*args: str) -> Result:
    return runner.invoke(cli_main.app, list(args), env={"COLUMNS": "200"})


def tree(d: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(d.iterdir())}


# ---------------------------------------------------------------------------------------------
# The library


def test_the_stream_schedule_names_the_absolute_program_and_config() -> None:
    s = sched.stream_schedule(program=PROG, config="/etc/standby/standby.toml")
    assert s == Schedule("stream", (ScheduleEntry.long_running(
        "stream", (PROG, "--config", "/etc/standby/standby.toml", "stream")),))
    assert sched.stream_schedule(program=PROG, config="/etc/b.toml", owner="stream-b").owner \
        == "stream-b"


def test_the_stream_unit_is_a_service_restarted_on_failure() -> None:
    files = sched.render_units(sched.stream_schedule(program=PROG, config="/etc/s b.toml"))
    assert list(files) == [UNIT]  # no timer
    unit = files[UNIT]
    service = unit.split("[Service]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert service == ["Type=simple", f'ExecStart={PROG} --config "/etc/s b.toml" stream',
                       "Restart=on-failure", "RestartSec=10s"]
    assert unit.endswith("[Install]\nWantedBy=multi-user.target\n")
    assert "After=network-online.target\n" in unit
    assert "Description=standby stream: stream (always running)\n" in unit


@needs_systemd_analyze
def test_systemd_accepts_the_stream_unit(tmp_path: Path) -> None:
    systemd_verify(tmp_path, sched.stream_schedule(program="/bin/echo", config="/etc/x y.toml"))


# ---------------------------------------------------------------------------------------------
# The CLI


def test_install_show_remove_the_stream_on_its_own(cfg: Path, units: Path) -> None:
    r = cli("--config", str(cfg), "schedule", "install", "--systemd", "--unit-dir", str(units),
            "--program", "/p/standby")
    assert r.exit_code == 0, r.output
    snapshot_units = {n: t for n, t in tree(units).items() if n.startswith("standby-snapshot-")}
    assert len(snapshot_units) == 6

    r = cli("--config", str(cfg), "schedule", "install", "--stream", "--systemd", "--unit-dir",
            str(units), "--program", "/p/standby")
    assert r.exit_code == 0, r.output
    assert f"installed schedule 'stream' in {units}: 1 units written, 0 removed" in r.output
    # not activated: the commands are left to the operator
    assert f"next: systemctl enable --now {UNIT}" in r.output
    after = tree(units)
    assert set(after) == {"foreign.service", UNIT, *snapshot_units}
    assert after["foreign.service"] == FOREIGN_UNIT
    assert {n: after[n] for n in snapshot_units} == snapshot_units
    assert f"ExecStart=/p/standby --config {cfg} stream\n" in after[UNIT]
    assert "Restart=on-failure\n" in after[UNIT]
    assert after[UNIT].endswith("WantedBy=multi-user.target\n")

    r = cli("schedule", "show", "--systemd", "--unit-dir", str(units))
    assert r.exit_code == 0, r.output
    assert re.search(rf"^stream:\n  stream +always running +started at boot +/p/standby "
                     rf"--config {re.escape(str(cfg))} stream$", r.output, re.M), r.output
    assert "snapshot:" in r.output and "None" not in r.output
    r = cli("schedule", "show", "--owner", "stream", "--systemd", "--unit-dir", str(units),
            "--json")
    assert json.loads(r.output) == [{"owner": "stream", "entries": [{
        "name": "stream", "cron": None, "next_run": None, "then": [],
        "argv": ["/p/standby", "--config", str(cfg), "stream"]}]}]

    # installing again changes nothing; removing takes the stream's unit only
    r = cli("--config", str(cfg), "schedule", "install", "--stream", "--systemd", "--unit-dir",
            str(units), "--program", "/p/standby")
    assert r.exit_code == 0 and tree(units) == after
    r = cli("schedule", "remove", "--stream", "--systemd", "--unit-dir", str(units))
    assert r.exit_code == 0, r.output
    assert f"removed schedule 'stream' in {units}: 0 units written, 1 removed" in r.output
    assert f"next: systemctl disable --now {UNIT}" in r.output
    assert tree(units) == {n: t for n, t in after.items() if n != UNIT}


def test_a_second_config_streams_under_its_own_owner(cfg: Path, units: Path) -> None:
    for owner in ("stream", "stream-b"):
        r = cli("--config", str(cfg), "schedule", "install", "--stream", "--owner", owner,
                "--systemd", "--unit-dir", str(units), "--program", "/p/standby")
        assert r.exit_code == 0, r.output
    assert {"standby-stream-stream.service", "standby-stream-b-stream.service"} <= set(
        tree(units))
    assert cli("schedule", "remove", "--owner", "stream-b", "--systemd", "--unit-dir",
               str(units)).exit_code == 0
    assert set(tree(units)) == {"foreign.service", UNIT}


def test_a_dry_run_writes_nothing_and_shows_the_unit(cfg: Path, units: Path) -> None:
    before = tree(units)
    r = cli("--config", str(cfg), "schedule", "install", "--stream", "--systemd", "--unit-dir",
            str(units), "--program", "/p/standby", "--enable", "--dry-run")
    assert r.exit_code == 0, r.output
    assert tree(units) == before
    assert f"# --- would write {units / UNIT}\n# BEGIN standby stream\n" in r.output
    assert f"ExecStart=/p/standby --config {cfg} stream\n" in r.output
    assert "# --- would run systemctl daemon-reload" in r.output
    assert f"# --- would run systemctl enable --now {UNIT}" in r.output
    # and removing it in a dry run leaves it
    cli("--config", str(cfg), "schedule", "install", "--stream", "--systemd", "--unit-dir",
        str(units), "--program", "/p/standby")
    installed = tree(units)
    r = cli("schedule", "remove", "--stream", "--systemd", "--unit-dir", str(units), "--dry-run")
    assert r.exit_code == 0 and f"# --- would delete {units / UNIT}" in r.output
    assert tree(units) == installed


@pytest.mark.parametrize("where", [["--crontab-file", "CT"], []])
def test_cron_cannot_keep_the_stream_running(cfg: Path, tmp_path: Path, where: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ct = tmp_path / "crontab"
    args = ["--config", str(cfg), "schedule", "install", "--stream", "--program", "/p/standby",
            *(str(ct) if w == "CT" else w for w in where)]
    with pytest.raises(SystemExit) as e:
        common.run(cli_main.app, args, "standby")
    assert e.value.code == UsageError.exit_code == 2
    err = capsys.readouterr().err
    assert "standby stream runs all the time and must be restarted when it fails, which cron " \
        "cannot do: it is installed as a systemd service" in err, err
    assert "--systemd" in err.split("cannot do", 1)[1]  # the hint says what to add
    assert not ct.exists()


@pytest.mark.parametrize("args, error, message", [
    (["--set-cron", "5 * * * *"], UsageError, "takes no snapshot times"),
    (["--then", "standby ship"], UsageError, "takes no snapshot times"),
    (["--from", "saved.cron"], UsageError, "takes no snapshot times"),
])
def test_the_stream_takes_no_snapshot_options(cfg: Path, units: Path, args: list[str],
                                              error: type, message: str) -> None:
    r = cli("--config", str(cfg), "schedule", "install", "--stream", "--systemd", "--unit-dir",
            str(units), "--program", "/p/standby", *args)
    assert isinstance(r.exception, error) and message in str(r.exception), r.output
    assert set(tree(units)) == {"foreign.service"}


@pytest.mark.parametrize("target, error, message", [
    ("", ConfigError, "no target to ship to"),
    ('[target]\nurl = "zfs://backup/zimbra"\n', UsageError,
     "ships to s3:// and file:// targets, not zfs://backup/zimbra"),
    ('[target]\nurl = "file:///srv/standby"\n', None, ""),
])
def test_the_config_must_name_a_target_the_stream_can_ship_to(
        tmp_path: Path, units: Path, target: str, error: type | None, message: str) -> None:
    c = config(tmp_path, target)
    r = cli("--config", str(c), "schedule", "install", "--stream", "--systemd", "--unit-dir",
            str(units), "--program", "/p/standby")
    if error is None:
        assert r.exit_code == 0, r.output
        assert UNIT in tree(units)
        return
    assert isinstance(r.exception, error), (r.output, r.exception)
    assert message in str(r.exception)
    assert set(tree(units)) == {"foreign.service"}  # refused before anything was written


def test_a_running_service_cannot_be_saved_as_cron_lines(cfg: Path, units: Path) -> None:
    cli("--config", str(cfg), "schedule", "install", "--stream", "--systemd", "--unit-dir",
        str(units), "--program", "/p/standby")
    r = cli("schedule", "save", "--owner", "stream", "--systemd", "--unit-dir", str(units))
    assert isinstance(r.exception, UsageError), r.output
    assert "keeps a service running" in r.exception.message
    assert r.exception.hint is not None and "install --stream" in r.exception.hint
