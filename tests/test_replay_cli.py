"""`zmplayredo` / `standby replay` as a user meets it: bad input and dry runs.

Bad input — an unparseable or impossible time, `--fromTime` later than `--toTime`, `--fromSeq`
greater than `--toSeq`, a `--logfiles` path that does not exist (also after existing ones), a log
of a newer format version (also as the last file), a store that is running — each gives a clear
message, the exit code documented in `standby/cli/replay.py` (2 bad arguments, 5 the store
service is running, 6 a log is newer, 9 a log file does not exist), no traceback, and changes
nothing: an empty target keeps empty volumes (MariaDB is not even installed) and a target that
already holds a replayed store keeps its digest.

`--dry-run` changes nothing either and reports the op counts the replay then applies, which
are those of Zimbra's selection rules (`replay_util.committed_txns`).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standby.store import control
from standby.store.loadgen import run as loadgen
from standby.store.site import Site
from tests.conftest import StoreHandle
from tests.replay_util import (
    Lab,
    applied_ops,
    committed_txns,
    digest,
    log_files,
    patch_version,
    standby_cli,
    zimbra_time,
    zmplayredo,
)
from tests.services import write_config

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def primary_log(tmp_path_factory: pytest.TempPathFactory,
                mariadb_available: None) -> Iterator[Path]:
    """One loadgen log for the module (tests that alter it alter a copy)."""
    root = tmp_path_factory.mktemp("replay-cli-log")
    h = StoreHandle(root, write_config(root, sections={"redolog": {"rollover_size_kb": 48}}))
    try:
        h.start()
        res = loadgen(h.settings.store_socket, accounts=4, ops=150, seed=42, workers=2)
        assert res.errors == 0, res.error_samples
        h.stop()
        assert len(log_files(Path(h.settings.volumes.redolog.path))) >= 3
        yield Path(h.settings.volumes.redolog.path)
    finally:
        try:
            control.stop(h.settings, timeout=30)
        except Exception:  # noqa: BLE001
            control.kill(h.settings)


def _newer_copy(src: Path, dest: Path, *, which: int) -> Path:
    """A copy of the log directory with one file's header claiming format 1.43."""
    shutil.copytree(src, dest)
    target = log_files(dest)[which].path
    patch_version(target, 1, 43)
    return target


def _bad_inputs(log: Path, work: Path) -> list[tuple[str, list[str], int, str]]:
    """(case, arguments, exit code, text the message must hold)."""
    files = [lf.path for lf in log_files(log)]
    newer_last = work / "newer-last"
    newer_mid = work / "newer-mid"
    not_a_log = work / "bad-magic"
    if not newer_last.exists():
        _newer_copy(log, newer_last, which=-1)
        _newer_copy(log, newer_mid, which=1)
        shutil.copytree(log, not_a_log)
        with open(log_files(not_a_log)[1].path, "r+b") as f:
            f.write(b"NOT_A_LOG")
    mid_file = log_files(newer_mid)[1].path
    return [
        ("unparseable fromTime", ["--log-dir", str(log), "--fromTime", "yesterday"], 2,
         "cannot parse"),
        ("impossible toTime", ["--log-dir", str(log), "--toTime", "2021/02/30 10:00:00"], 2,
         "not a valid date-time"),
        ("fromTime later than toTime", ["--log-dir", str(log), "--fromTime",
                                        "2024/01/02 00:00:00", "--toTime",
                                        "20240101.000000.000"], 2,
         "Error: fromTime later than toTime"),
        ("fromSeq greater than toSeq", ["--log-dir", str(log), "--fromSeq", "5", "--toSeq",
                                        "2"], 2, "Error: fromSeq greater than toSeq"),
        ("non-numeric toSeq", ["--log-dir", str(log), "--toSeq", "last"], 2, "toSeq"),
        ("missing --logfiles", ["--logfiles", str(log / "nope.log")], 9, "does not exist"),
        ("missing file after existing ones (Zimbra's space-separated form)",
         ["--logfiles", *map(str, files[:2]), str(log / "archive" / "nope.log")], 9,
         "does not exist"),
        ("zero threads", ["--log-dir", str(log), "--threads", "0"], 2, "at least 1"),
        ("zero queue capacity", ["--log-dir", str(log), "--queueCapacity", "0"], 2,
         "at least 1"),
        ("mailbox id 0", ["--log-dir", str(log), "--mailboxId", "0"], 2, "positive"),
        ("missing log directory", ["--log-dir", str(work / "no-such-dir")], 9,
         "does not exist"),
        ("not a redo log", ["--log-dir", str(not_a_log)], 6, "not a Zimbra redo log"),
        ("newer version, last file", ["--log-dir", str(newer_last)], 6, "newer"),
        ("newer version, middle file", ["--log-dir", str(newer_mid)], 6, "newer"),
        ("newer version via --logfiles", ["--logfiles", str(mid_file)], 6, "newer"),
    ]


def _check_refused(r: Any, rc: int, text: str) -> None:
    assert r.rc == rc, r.describe()
    assert text in r.err, r.describe()
    r.assert_no_traceback()


def _untouched_empty(t: Any) -> None:
    s = t.settings
    for v in ("db", "blob", "index"):
        root = Path(getattr(s.volumes, v).path)
        assert not any(root.iterdir()), f"{v} volume written: {list(root.iterdir())}"
    assert not (s.state_dir / "replay.incomplete").exists()
    assert not Site(s).db.running()


def test_bad_input_is_refused_on_an_empty_target(make_store, primary_log: Path,
                                                 tmp_path: Path) -> None:
    t = make_store("standby")
    for case, args, rc, text in _bad_inputs(primary_log, tmp_path):
        r = zmplayredo(t.cfg, *args)
        _check_refused(r, rc, text)
        _untouched_empty(t)
    # The `standby replay` spelling reports the same way.
    r = standby_cli(t.cfg, "replay", "--log-dir", str(primary_log), "--fromSeq", "3",
                    "--toSeq", "1")
    _check_refused(r, 2, "Error: fromSeq greater than toSeq")
    _untouched_empty(t)


def test_bad_input_leaves_a_replayed_target_unchanged(make_store, primary_log: Path,
                                                      tmp_path: Path) -> None:
    t = make_store("standby")
    first = log_files(primary_log)[0].seq
    zmplayredo(t.cfg, "--log-dir", primary_log, "--toSeq", str(first)).assert_ok()
    before = digest(t)
    assert before.mailboxes, "the first file should have created mailboxes"
    for case, args, rc, text in _bad_inputs(primary_log, tmp_path):
        _check_refused(zmplayredo(t.cfg, *args), rc, text)
        assert not (t.settings.state_dir / "replay.incomplete").exists(), case
        assert not Site(t.settings).db.running(), case
    assert digest(t).total == before.total


def test_running_store_is_refused(make_store, primary_log: Path) -> None:
    t = make_store("standby")
    t.start()
    with t.client() as c:
        c.call("create_account", email="someone@example.com")
    before = digest(t)
    for args in (["--log-dir", str(primary_log)], ["--log-dir", str(primary_log), "--naive"]):
        _check_refused(zmplayredo(t.cfg, *args), 5, "Stop mailboxd before running zmplayredo")
    assert not (t.settings.state_dir / "replay.incomplete").exists()
    assert digest(t).total == before.total


def test_logfiles_in_zimbras_form_equal_to_seq(make_store, primary_log: Path) -> None:
    """`--logfiles a b c` (space-separated, as Zimbra takes it) replays exactly those files:
    the same state as `--toSeq` of the last of them."""
    with Lab(make_store) as lab:
        logs = log_files(primary_log)
        upto = logs[len(logs) // 2]
        chosen = [str(lf.path) for lf in logs if lf.seq <= upto.seq]
        a, b = lab.store("logfiles"), lab.store("toseq")
        zmplayredo(a.cfg, "--logfiles", *chosen).assert_ok()
        zmplayredo(b.cfg, "--log-dir", primary_log, "--toSeq", str(upto.seq)).assert_ok()
        assert digest(a).total == digest(b).total


def _expected_counts(log: Path, keep: Any = lambda t: True) -> Counter[str]:
    return Counter(t.op.NAME for t in applied_ops(committed_txns(log_files(log)).txns)
                   if keep(t))


def test_dry_run_changes_nothing_and_counts_the_ops(make_store, primary_log: Path) -> None:
    with Lab(make_store) as lab:
        everything = applied_ops(committed_txns(log_files(primary_log)).txns)
        cut = everything[len(everything) // 2].commit.tstamp
        for extra, keep in (([], lambda t: True),
                            (["--toTime", zimbra_time(cut, "yyyyMMddHHmmssSSS")],
                             lambda t: t.commit.tstamp <= cut)):
            want = _expected_counts(primary_log, keep)
            t = lab.store(f"dry{len(extra)}")
            r = zmplayredo(t.cfg, "--dry-run", "--json", "--log-dir", primary_log, *extra)
            plan = r.assert_ok().summary
            assert plan["ops"] == sum(want.values())
            assert plan["by_op"] == dict(sorted(want.items()))
            assert plan["mailboxes"] == len({x.start.mailbox_id for x in everything
                                             if keep(x)})
            _untouched_empty(t)
            text = zmplayredo(t.cfg, "--dry-run", "--log-dir", primary_log, *extra)
            assert f"would replay {sum(want.values())} ops" in text.assert_ok().out
            _untouched_empty(t)
            if extra:  # the same instant written in another local zone selects the same ops
                zoned = ["--toTime", zimbra_time(cut, "yyyy/MM/dd HH:mm:ss.SSS", "Asia/Kolkata")]
                other = zmplayredo(t.cfg, "--dry-run", "--json", "--log-dir", primary_log,
                                   *zoned, tz="Asia/Kolkata").assert_ok().summary
                assert other["by_op"] == plan["by_op"]
            done = zmplayredo(t.cfg, "--json", "--log-dir", primary_log, *extra).assert_ok()
            assert done.summary["by_op"] == plan["by_op"]
            assert done.summary["ops_applied"] == plan["ops"]
