"""A benchmark's work folder (`standby.bench.workdir`): removed on return, on an error and on
SIGTERM; abandoned folders of dead runs swept, live and kept ones left; no start without room."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from standby.bench import workdir
from standby.bench.workdir import KEPT, OWNER, sweep_abandoned, work_folder
from standby.errors import VolumeError

PREFIX = "standby-bench-test-"


def test_removed_on_return_and_on_error_kept_on_request(tmp_path: Path) -> None:
    with work_folder(PREFIX, workdir=tmp_path, need_bytes=0) as base:
        (base / "x").write_bytes(b"1" * 1000)
        assert (base / OWNER).read_text().strip() == str(os.getpid())
    assert not base.exists()
    with pytest.raises(RuntimeError):
        with work_folder(PREFIX, workdir=tmp_path, need_bytes=0) as base:
            (base / "store").mkdir()
            raise RuntimeError("the benchmark failed")
    assert not base.exists()
    with work_folder(PREFIX, workdir=tmp_path, need_bytes=0, keep=True) as kept:
        pass
    assert (kept / KEPT).exists()
    assert sweep_abandoned(tmp_path, PREFIX, lambda m: None) == []  # kept: never swept
    assert kept.exists()


def test_sigterm_removes_the_folder(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from standby.bench.workdir import work_folder
        with work_folder({PREFIX!r}, workdir=Path({str(tmp_path)!r}), need_bytes=0) as b:
            (b / "big").write_bytes(b"x" * 100000)
            print(b, flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base = Path(proc.stdout.readline().strip())
    assert base.is_dir() and (base / "big").exists()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "stopped by signal SIGTERM" in err, err
    assert not base.exists()


def test_a_forked_worker_stopped_by_its_pool_ends_quietly(tmp_path: Path) -> None:
    """A pool's worker forked inside the work folder's block inherits the handler; its pool
    ending it with SIGTERM must not raise the benchmark's Interrupted in it (a traceback saying
    the folder was removed, while the benchmark runs on)."""
    code = textwrap.dedent(f"""
        import os, signal, time
        from pathlib import Path
        from standby._process import forking
        from standby.bench.workdir import work_folder
        with work_folder({PREFIX!r}, workdir=Path({str(tmp_path)!r}), need_bytes=0) as b:
            with forking() as ctx:
                p = ctx.Process(target=time.sleep, args=(60,))
                p.start()
            time.sleep(0.5)
            os.kill(p.pid, signal.SIGTERM)
            p.join(30)
            print(p.exitcode, b.exists(), flush=True)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(-signal.SIGTERM), "True"], res.stdout
    assert "Interrupted" not in res.stderr, res.stderr


def test_sweep_removes_folders_of_dead_runs_only(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f"{PREFIX}gone"
    gone.mkdir()
    (gone / OWNER).write_text(f"{dead.pid}\n")
    (gone / "store").mkdir()
    live = tmp_path / f"{PREFIX}live"
    live.mkdir()
    (live / OWNER).write_text(f"{os.getpid()}\n")
    fresh = tmp_path / f"{PREFIX}fresh"  # no owner file yet: a run being set up
    fresh.mkdir()
    old = tmp_path / f"{PREFIX}old"  # no owner file, two days old
    old.mkdir()
    two_days = time.time() - 2 * 86_400
    os.utime(old, (two_days, two_days))
    other = tmp_path / "standby-bench-other-x"
    other.mkdir()
    said: list[str] = []
    removed = sweep_abandoned(tmp_path, PREFIX, said.append)
    assert sorted(removed) == sorted([gone, old])
    assert not gone.exists() and not old.exists()
    assert live.exists() and fresh.exists() and other.exists()
    assert any(str(gone) in m for m in said), said


def test_no_start_without_room(tmp_path: Path) -> None:
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with pytest.raises(VolumeError) as e:
        with work_folder(PREFIX, workdir=tmp_path, need_bytes=free + (1 << 30)):
            raise AssertionError("must not start")
    assert "GB free" in str(e.value) and e.value.exit_code == 4
    assert not list(tmp_path.glob(f"{PREFIX}*"))
    assert workdir.folder_bytes(tmp_path) == 0


def test_a_measured_store_is_kept_while_the_disk_has_room_and_removed_otherwise(
        tmp_path: Path) -> None:
    from standby.bench.replay import make_store

    said: list[str] = []
    s = make_store(tmp_path / "a")
    (s.volumes.blob.path / "x.msg").write_bytes(b"x")
    assert not workdir.drop_volumes(s, ("blob",), said.append, settle_s=0, keep_if_room=0)
    assert (s.volumes.blob.path / "x.msg").exists() and "kept the volumes of a" in said[-1]
    assert workdir.drop_volumes(s, ("blob",), said.append, settle_s=0, keep_if_room=1 << 60)
    assert not s.volumes.blob.path.exists() and "removed the blob volumes of a" in said[-1]
