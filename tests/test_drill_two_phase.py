"""The failover drill, end to end on a small load: mail first, search right after.

`standby drill --json` loads a primary, ships sets and redolog snapshots, kills it, restores the
standby, replays with `--index defer` and catches the index up. Its report must give both
recovery times (`rto_search_s` after `rto_mail_s`, by the catch-up's seconds), show that the
index really was behind when mail was back (the catch-up wrote documents), and both states equal
to the primary: db and blob right after the replay, every volume after the catch-up. The human
report says the same in words.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replay_util import STANDBY, run_cli

pytestmark = pytest.mark.services

SMALL = ["--accounts", "4", "--workers", "2", "--set-every", "2", "--redolog-every", "1",
         "--kill-min", "6", "--kill-max", "8", "--mailbox-groups", "10", "--seed", "11"]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A work folder with a short path: the drill's MariaDB sockets live under it (a Unix
    socket path has at most 107 bytes; pytest's tmp_path is too deep)."""
    d = Path(tempfile.mkdtemp(prefix="sbd-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_drill_reports_both_rtos_and_both_states_equal(short_dir: Path,
                                                       mariadb_available: None) -> None:
    tmp_path = short_dir
    r = run_cli([str(STANDBY), "drill", *SMALL, "--workdir", str(tmp_path), "--json"],
                timeout=900)
    assert r.rc == 0, r.describe()
    rep = json.loads([ln for ln in r.out.splitlines() if ln.strip()][-1])
    assert rep["replay_ops"] > 0 and rep["sets"] >= 1, rep
    assert rep["catchup_documents"] > 0, "the index was not behind when mail was back"
    # rto_s runs on to the standby's store started: after mail is back, not before.
    assert 0 < rep["rto_mail_s"] < rep["rto_s"], rep
    assert rep["ok"] is True and rep["committed_ops_lost"] == 0, rep
    assert rep["rto_search_s"] == pytest.approx(rep["rto_mail_s"] + rep["catchup_s"], abs=0.01)
    assert rep["rto_search_s"] > rep["rto_mail_s"], rep
    assert rep["equal_mail"] is True, "db and blob differ from the primary right after replay"
    assert rep["digest_equal"] == {"db": True, "blob": True, "index": True, "all": True}, rep
    assert rep["equal"] is True and rep["standby_digest"] == rep["reference_digest"], rep
    assert not [n for n in rep["notes"] if "behind" in n or "error" in n], rep["notes"]
    assert not list(tmp_path.glob("standby-drill-*")), "the drill left its work folder"

    words = run_cli([str(STANDBY), "drill", *SMALL, "--workdir", str(tmp_path)], timeout=900)
    assert words.rc == 0, words.describe()
    assert "RTO, mail " in words.out and "RTO, search " in words.out, words.out
    assert "db, blob == primary    yes right after the replay" in words.out, words.out
    assert "standby == primary     yes" in words.out, words.out
