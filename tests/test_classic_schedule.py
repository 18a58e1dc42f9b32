"""zmschedulebackup: the guide's entries (round trip), its default schedules, and the real
command on a crontab file through the schedule package (other lines untouched)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby.classic import attrs, schedule
from standby.classic.attrs import BackupConfig
from standby.errors import UsageError
from standby.schedule import crontab_schedule
from tests.test_classic_cli import zm

crons = st.sampled_from(["0 1 * * 6", "0 1 * * 0-5", "0 0 * * *", "30 2 1,15 * *",
                         "*/15 * * * *", "0 1 * * 7", "@daily"])
entries = st.lists(st.one_of(
    st.builds(schedule.Entry, st.sampled_from(["f", "i"]), crons),
    st.builds(schedule.Entry, st.just("d"), crons,
              st.tuples(st.integers(1, 99), st.sampled_from("dmy")).map(
                  lambda t: f"{t[0]}{t[1]}"))), min_size=1, max_size=6)


@given(entries)
def test_entries_round_trip(es: list[schedule.Entry]) -> None:
    assert schedule.parse_entries(schedule.format_entries(es)) == es
    s = schedule.to_schedule(es, zmbackup="/opt/bin/zmbackup", extra=["--config", "/c.toml"])
    assert schedule.from_schedule(s) == es
    assert schedule.from_schedule(schedule.to_schedule(es, zmbackup="/z", auto_grouped=True)) == es


def test_guide_entries_and_defaults() -> None:
    # The guide's -R example, with the five fields quoted or as five words.
    want = [schedule.Entry("f", "0 1 * * 7"), schedule.Entry("i", "0 1 * * 1-6"),
            schedule.Entry("d", "0 0 * * *", "1m")]
    assert schedule.parse_entries(["f", "0 1 * * 7", "i", "0 1 * * 1-6", "d", "1m",
                                   "0 0 * * *"]) == want
    assert schedule.parse_entries(["f", "0", "1", "*", "*", "7", "i", "0 1 * * 1-6", "d", "1m",
                                   "0 0 * * *"]) == want
    # The standard default: full Saturday 1:00, incremental Sunday-Friday 1:00, delete > 1m.
    s = schedule.to_schedule(schedule.default_entries(BackupConfig()), zmbackup="/z")
    assert schedule.lines(s) == ["0 1 * * 6 /z -f -a all", "0 1 * * 0-5 /z -i",
                                 "0 0 * * * /z -del 1m"]
    ag = attrs.backup_config({"zimbraBackupMode": ["Auto-Grouped"],
                              "zimbraBackupAutoGroupedInterval": ["2d"]}, {})
    s = schedule.to_schedule(schedule.default_entries(ag), zmbackup="/z", auto_grouped=True)
    assert schedule.lines(s) == ["0 1 */2 * * /z -f", "0 0 * * * /z -del 1m"]
    for bad in (["x", "0 1 * * *"], ["f"], ["d", "0 0 * * *"], ["f", "0 25 * * *"],
                ["d", "soon", "0 0 * * *"]):
        with pytest.raises(UsageError):
            schedule.parse_entries(bad)


def test_zmschedulebackup_on_a_crontab(make_store, tmp_path: Path, capsys) -> None:
    h = make_store("primary")
    cfg = str(h.cfg)
    tab = tmp_path / "crontab"
    tab.write_text("MAILTO=ops@example.com\n5 4 * * * /usr/bin/true\n")
    base = ("--crontab-file", str(tab), "--config", cfg)
    code, out, err = zm(capsys, "zmschedulebackup", "-D", *base)
    assert code == 0, err
    text = tab.read_text()
    assert text.startswith("MAILTO=ops@example.com\n5 4 * * * /usr/bin/true\n")
    s = crontab_schedule(text, "classic")
    assert s is not None and [e.cron for e in s.entries] == ["0 1 * * 6", "0 1 * * 0-5",
                                                              "0 0 * * *"]
    assert all(Path(e.argv[0]).name == "zmbackup" and Path(e.argv[0]).is_absolute()
               and cfg in e.argv for e in s.entries)
    code, out, _ = zm(capsys, "zmschedulebackup", "-A", "f", "0 1 * * 4", *base)
    assert code == 0
    code, out, _ = zm(capsys, "zmschedulebackup", "-q", *base)
    assert [ln.split(" /")[0] for ln in out.splitlines()] == ["0 1 * * 6", "0 1 * * 0-5",
                                                              "0 0 * * *", "0 1 * * 4"]
    code, out, _ = zm(capsys, "zmschedulebackup", "-s", *base)
    assert out.strip() == ("zmschedulebackup -R f '0 1 * * 6' i '0 1 * * 0-5' d 1m "
                           "'0 0 * * *' f '0 1 * * 4'")
    code, _, _ = zm(capsys, "zmschedulebackup", "-R", "f", "0 1 * * 7", "i", "0 1 * * 1-6",
                    "d", "1m", "0 0 * * *", *base)
    assert code == 0
    code, out, _ = zm(capsys, "zmschedulebackup", "-q", *base)
    assert [ln.split(" /")[0] for ln in out.splitlines()] == ["0 1 * * 7", "0 1 * * 1-6",
                                                              "0 0 * * *"]
    assert tab.read_text().startswith("MAILTO=ops@example.com\n5 4 * * * /usr/bin/true\n")
    before = tab.read_text()
    code, out, _ = zm(capsys, "zmschedulebackup", "-D", "--dry-run", *base)
    assert code == 0 and "0 1 * * 6" in out and tab.read_text() == before
    code, _, err = zm(capsys, "zmschedulebackup", "-R", "f", "61 0 * * *", *base)
    assert code == 2 and "minute" in err
    code, _, err = zm(capsys, "zmschedulebackup", "-q", "-D", *base)
    assert code == 2
