"""Bad input at the command line: each a clear message on stderr (`error: …`, a hint) and the
documented exit code (standby/errors.py), never a traceback.

    2 usage / an unparseable time   3 configuration   4 volumes   5 conflict with running state
    6 a corrupt or newer redo log (see test_redolog_corrupt.py)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from standby.store import control
from tests.services import write_config

BIN = Path(sys.executable).parent


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(BIN / "standby"), *map(str, argv)], capture_output=True, text=True,
                       check=False, timeout=300, env=dict(os.environ, TZ="UTC"))
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    return r


def zmredodump(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(BIN / "zmredodump"), *map(str, argv)], capture_output=True,
                       text=True, check=False, timeout=120, env=dict(os.environ, TZ="UTC"))
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    return r


def error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one `error: …` line (log lines on stderr are JSON)."""
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    return line


def test_unknown_config_key_exits_3(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, sections={"redolog": {"rollover_sise_kb": 64}})
    r = run("--config", cfg, "store", "status")
    assert r.returncode == 3
    assert error_line(r) == ("error: unknown configuration key redolog.rollover_sise_kb in "
                             "[redolog]")
    assert "hint: valid keys here: " in r.stderr and "rollover_size_kb" in r.stderr
    missing = run("--config", tmp_path / "nope.toml", "store", "status")
    assert missing.returncode == 3 and "does not exist" in error_line(missing)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    r = run("--log-level", "loud", "--config", cfg, "store", "status")
    assert r.returncode == 2 and "--log-level: 'loud'" in error_line(r)
    r = run("--config", cfg, "store", "status", "--no-such-flag")
    assert r.returncode == 2 and "No such option" in r.stderr


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_unparseable_time_exits_2(tmp_path: Path, option: str) -> None:
    log = tmp_path / "redo.log"
    log.write_bytes(b"")
    r = zmredodump(option, "2021/13/45 25:00:00", log)
    assert r.returncode == 2
    assert error_line(r) == (f"error: {option}: '2021/13/45 25:00:00' is not a valid date-time "
                             "(month must be in 1..12)")
    r = zmredodump(option, "next tuesday", log)
    assert r.returncode == 2
    assert error_line(r) == f"error: {option}: cannot parse 'next tuesday' as a date-time"
    assert '"yyyy/MM/dd HH:mm:ss"' in r.stderr and '"yyyyMMddHHmmss"' in r.stderr
    r2 = run("redolog", "dump", option, "20211017.250000", log)
    assert r2.returncode == 2 and "not a valid date-time" in error_line(r2)


def test_missing_volume_exits_4(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    shutil.rmtree(tmp_path / "blob")
    r = run("--config", cfg, "store", "start")
    assert r.returncode == 4
    assert error_line(r) == f"error: volume blob: {tmp_path / 'blob'} does not exist"
    assert f"hint: create it, or fix volumes.blob.path in {cfg}" in r.stderr
    (tmp_path / "blob").write_text("not a directory")
    r = run("--config", cfg, "store", "start")
    assert r.returncode == 4 and "is not a directory" in error_line(r)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write to: mode 0555 for a normal user; for root (who
    may write anywhere) a read-only tmpfs mounted on it, unmounted afterwards."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "standby-test-ro", str(d)],
                   check=True, capture_output=True, timeout=30)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True, capture_output=True, timeout=30)


def test_unwritable_volume_exits_4(tmp_path: Path, read_only_dir: Path) -> None:
    vols = {n: tmp_path / n for n in ("db", "blob", "index")} | {"redolog": read_only_dir}
    cfg = write_config(tmp_path / "store", volumes=vols)
    assert not os.access(read_only_dir, os.W_OK)
    r = run("--config", cfg, "store", "start")
    assert r.returncode == 4, r.stderr
    assert error_line(r) == f"error: volume redolog: {read_only_dir} is not writable by this user"
    assert not (tmp_path / "db" / "data").exists(), "nothing is started or created"


def test_second_start_on_the_same_volumes_exits_5(make_store) -> None:  # type: ignore[no-untyped-def]
    first = make_store("first")
    r = run("--config", first.cfg, "store", "start", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout.splitlines()[-1])
    assert st["service_pid"] and st["service_answering"] and st["mariadb_pid"]

    again = run("--config", first.cfg, "store", "start")
    assert again.returncode == 5
    assert error_line(again) == "error: the store is already running on these volumes"
    assert "hint: `standby store status` shows it" in again.stderr

    # Another configuration (its own state directory and sockets) on the same four volumes.
    s = first.settings
    vols = {n: v.path for n, v in s.volumes.items()}
    second = make_store("second", volumes=vols)
    r2 = run("--config", second.cfg, "store", "start")
    assert r2.returncode == 5, r2.stderr
    assert error_line(r2) == "error: the store is already running on these volumes"
    assert control.status(second.settings).service_pid is None

    # With the first one's service stopped but its MariaDB still up, the data directory is
    # still taken.
    assert run("--config", first.cfg, "store", "stop", "--service-only").returncode == 0
    r3 = run("--config", second.cfg, "store", "start")
    assert r3.returncode == 5, r3.stderr
    assert "is in use by mariadbd pid" in error_line(r3)

    status = run("--config", first.cfg, "store", "status", "--json")
    assert json.loads(status.stdout.splitlines()[-1])["service_pid"] is None
    stopped = run("--config", first.cfg, "store", "stop")
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped: mariadb"
    nothing = run("--config", first.cfg, "store", "stop")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "nothing was running"


def test_store_init_refuses_to_overwrite(tmp_path: Path) -> None:
    r = run("store", "init", tmp_path / "s", "--server-id", "srv-x", "--mailbox-groups", "4")
    assert r.returncode == 0 and r.stdout.strip() == str(tmp_path / "s" / "standby.toml")
    again = run("store", "init", tmp_path / "s")
    assert again.returncode == 5 and "already exists" in error_line(again)
    assert "--force" in again.stderr
    forced = run("store", "init", tmp_path / "s", "--force")
    assert forced.returncode == 0
    st = run("--config", tmp_path / "s" / "standby.toml", "store", "status", "--json")
    assert st.returncode == 0
    assert json.loads(st.stdout.splitlines()[-1]) == {
        "mariadb_pid": None, "service_pid": None, "service_answering": False, "redo_seq": None,
        "redo_size": None, "archived_logs": 0}


def test_mailbox_groups_changed_after_creation_exits_3(make_store) -> None:  # type: ignore[no-untyped-def]
    h = make_store("g")
    h.start()
    h.stop()
    text = h.cfg.read_text().replace("mailbox_groups = 4", "mailbox_groups = 8")
    h.cfg.write_text(text)
    r = run("--config", h.cfg, "store", "start")
    assert r.returncode == 3
    assert "store.mailbox_groups is 8 but the database was created with 4" in error_line(r)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A work folder with a short path (a Unix socket path is at most 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="sbt-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_bench_store_smoke(short_dir: Path, mariadb_available: None) -> None:
    """`standby bench store --json`: figures on the last line, its temporary folder removed."""
    r = run("bench", "store", "--actions", "60", "--accounts", "4", "--workers", "2",
            "--reader-records", "2000", "--repeats", "1", "--workdir", short_dir, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["primary_actions"] == 60 and out["primary_errors"] == 0
    assert out["primary_redo_records"] > 0 and out["primary_actions_per_s"] > 0
    assert out["primary_latency_ms_p50"] <= out["primary_latency_ms_p99"]
    assert out["reader_records"] >= 2000 and out["reader_records_per_s"] > 0
    assert out["reader_mb_per_s"] > 0
    assert list(short_dir.iterdir()) == [], "the bench leaves nothing behind"


def test_socket_path_too_long_exits_3(tmp_path: Path, mariadb_available: None) -> None:
    deep = tmp_path / ("d" * 90)
    cfg = write_config(deep)
    r = run("--config", cfg, "store", "start")
    assert r.returncode == 3, r.stderr
    assert "a Unix socket allows" in error_line(r) and "mariadb.sock" in error_line(r)
