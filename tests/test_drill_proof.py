"""The drill's proof can fail: the position reached, the primary's own log cut there, committed
ops lost, the gap; `--runs N` prints the distribution; a sabotaged drill (the newest redolog
snapshot removed from the target before the pull) reports the gap and exits non-zero."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby import drill_proof as proof
from standby.redolog import position
from standby.drill_runs import spread
from standby.redolog.files import ARCHIVE_DIR
from standby.redolog.ops import CreateMailbox
from standby.redolog.record import Record
from standby.redolog.writer import RedoLogWriter, WriterConfig
from tests.status_util import cli

T0 = 1_800_000_000_000


def write_log(d: Path, txns: list[int], *, roll_after: int | None = None) -> list[int]:
    """Committed CreateMailbox transactions numbered `txns`, a rollover after `roll_after` of
    them; the commit times, in order."""
    d.mkdir(parents=True)
    now = [T0]
    w = RedoLogWriter(d, server_id="srv", clock=lambda: now[0],
                      config=WriterConfig(fsync_interval_ms=0, rollover_size=1 << 40,
                                          rollover_min_age_ms=0, rollover_hard_max=1 << 41),
                      fsync=lambda fd: None)
    w.open()
    commits = []
    for i, n in enumerate(txns):
        now[0] = T0 + 1000 * n
        rec = Record(CreateMailbox(account_id=f"acct-{n}"), now[0], T0 // 1000, n, n, 1)
        w.log(rec, sync=False)
        now[0] += 10
        w.log_commit(rec, tstamp=now[0])
        commits.append(now[0])
        if roll_after is not None and i + 1 == roll_after:
            w.rollover(force=True)
    w.close()
    return commits


@pytest.fixture
def primary(tmp_path: Path) -> tuple[Path, list[int]]:
    d = tmp_path / "primary"
    return d, write_log(d, [1, 2, 3, 4, 5, 6], roll_after=3)


def test_reach_cut_and_loss_of_a_standby_behind_the_primary(
        tmp_path: Path, primary: tuple[Path, list[int]]) -> None:
    pdir, commits = primary
    sb = tmp_path / "standby"
    write_log(sb, [1, 2, 3, 4, 5], roll_after=3)  # the same log, one transaction shorter
    r = position.reach(sb)
    assert r.seq == max(s for s, _ in position.logs_by_seq(pdir)) and r.last_commit_ms == commits[4]
    cut = proof.cut_copy(pdir, r, tmp_path / "cut")
    assert sorted(p.name for p in (cut / ARCHIVE_DIR).iterdir())[0].endswith(".log")
    lost = proof.loss(pdir, cut, sb)
    assert (lost.committed_ops_lost, lost.ops_after_cut, lost.primary_ops) == (0, 1, 6)
    assert proof.gap(r, (r.seq, r.offset), "confirmed") is None


def test_a_committed_op_missing_at_the_standby_is_lost(
        tmp_path: Path, primary: tuple[Path, list[int]]) -> None:
    pdir, _ = primary
    sb = tmp_path / "standby"
    write_log(sb, [1, 2, 4, 5, 6], roll_after=2)  # transaction 3 never arrived
    r = position.reach(sb)
    cut = proof.cut_copy(pdir, r, tmp_path / "cut")
    lost = proof.loss(pdir, cut, sb)
    assert lost.committed_ops_lost == 1 and lost.ops_after_cut == 0


def test_reaching_less_than_was_confirmed_is_a_gap(primary: tuple[Path, list[int]]) -> None:
    pdir, _ = primary
    r = position.reach(pdir)
    why = proof.gap(r, (r.seq, r.offset + 1), "confirmed a redolog snapshot")
    assert why is not None and why.startswith(f"gap: the standby reached seq {r.seq} offset")
    assert proof.gap(r, (r.seq - 1, 10**9), "x") is None
    assert proof.divergent({1: "a", 2: "b"}, {1: "a", 2: "c", 3: "d"}) == [2, 3]


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=40))
def test_the_spread_is_ordered(xs: list[float]) -> None:
    s = spread(xs)
    assert min(xs) == s.low <= s.median <= s.high == max(xs) and s.low <= s.p90 <= s.high


# --------------------------------------------------------------------------------------------
# Real drills through the CLI


@pytest.fixture
def short() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sbd-"))  # socket paths must stay under 107 bytes
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


QUICK = ["--accounts", "4", "--workers", "2", "--mailbox-groups", "4"]


@pytest.mark.parametrize("what", ["redolog", "segment"])
def test_a_sabotaged_drill_reports_the_gap_and_fails(
        what: str, short: Path, mariadb_available: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    # one set, then a redolog snapshot every second: the newest shipped one is a redolog
    # snapshot, and the pull falls back to the one before it. Without the stream, which would
    # cover what that snapshot held; with it, one of its segments goes. The set is taken 2 s
    # in and takes 4-5 s to take and ship here: killed at 7-8 s, the first redolog snapshot
    # sometimes came too late (the newest shipped was the set, exit 9); killed at 10-11 s,
    # several come first.
    stream = "--no-stream" if what == "redolog" else "--stream"
    code, out, err = cli(["drill", *QUICK, "--workdir", str(short), "--seed", "11",
                          "--set-every", "60", "--redolog-every", "1", "--kill-min", "10",
                          "--kill-max", "11", "--sabotage", what, stream], capsys)
    assert code == 8, (out, err[-3000:])
    assert "result                 FAILED" in out
    assert "note                   gap: the standby reached seq" in out
    assert f"drill: sabotage: removed {what}" in err.replace("redolog snapshot", "redolog")
    assert not list(short.iterdir())  # the work folder went


def test_five_default_drills_in_a_row_print_the_distribution(
        short: Path, mariadb_available: None, capsys: pytest.CaptureFixture[str]) -> None:
    """`make drill`'s drill (every option at its default: streaming, --index defer), five times
    with seeds 21-25: each one ok, nothing lost, nothing divergent."""
    code, out, err = cli(["drill", "--workdir", str(short), "--seed", "21", "--runs", "5",
                          "--json"], capsys)
    assert code == 0, (out, err[-3000:])
    *runs, dist = [json.loads(line) for line in out.splitlines()]
    assert len(runs) == 5 and dist["runs"] == 5 and dist["ok"] == 5
    for r in runs:
        assert r["ok"] and r["committed_ops_lost"] == 0 and r["divergent_mailboxes"] == 0
        assert r["rpo_s"] > 0 and r["rto_s"] > 0 and r["replay_ops_per_s"] > 0
        assert r["ops_after_cut"] >= 0 and r["reached"].startswith("seq ")
    assert dist["seeds"] == ["21", "22", "23", "24", "25"]
    assert dist["rpo_s"]["min"] == min(r["rpo_s"] for r in runs)
    assert dist["rto_s"]["max"] == max(r["rto_s"] for r in runs)
