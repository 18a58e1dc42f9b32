"""Backup sessions on a real store under load: shared blobs stored once, no new blob bytes for
unchanged data; zmbackupabort and SIGKILL during a session; auto-grouped sessions with an
injected clock, their redo logs, deletion and database dumps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from standby.classic import backup, blobpack, deletion, labels, localconfig, restore, target
from standby.classic.env import Env
from standby.classic.target import account_relpath
from standby.errors import UsageError
from standby.store import blobs as blobmod
from standby.store.directory import Directory
from standby.store.loadgen import run as loadgen
from tests.classic_util import digests, load_running, make_env

BIN = Path(sys.executable).parent


def _members(session: Path) -> dict[str, int]:
    """How many times each blob digest is stored in a session's containers."""
    seen: dict[str, int] = {}
    for d, _dirs, names in os.walk(session):
        if not d.endswith("blobs") and "/blobs" not in d:
            continue
        for n in names:
            p = os.path.join(d, n)
            if n.endswith(".zip"):
                with zipfile.ZipFile(p) as z:
                    for m in z.namelist():
                        seen[m] = seen.get(m, 0) + 1
            elif n != blobpack.MANIFEST and not n.startswith("."):
                seen[n] = seen.get(n, 0) + 1
    return seen


def _new_blob_bytes(session: Path) -> int:
    """Bytes of blob containers in a session that are not hard links to an earlier one."""
    total = 0
    for d, _dirs, names in os.walk(session):
        if "blobs" not in Path(d).parts:
            continue
        for n in names:
            st = os.lstat(os.path.join(d, n))
            if n != blobpack.MANIFEST and st.st_nlink == 1:
                total += st.st_size
    return total


def test_shared_blobs_once_and_unchanged_full_writes_no_blob_bytes(make_store,
                                                                   tmp_path: Path) -> None:
    h = make_store("primary")
    h.start()
    env = make_env(h, tmp_path / "backup")
    r = loadgen(h.settings.store_socket, accounts=4, ops=200, seed=5, workers=2)
    assert r.errors == 0
    everyone = [a.email for a in env.site.directory.accounts()]
    raw = b"Subject: to everyone\r\nFrom: a@example.com\r\n\r\n" + os.urandom(3000).hex().encode()
    with h.client() as c:
        c.deliver(raw, everyone)
    digest = blobmod.digest(raw)
    with load_running(h, accounts=4, seed=6, rate=30):
        first = backup.run(env, backup.Request("full")).sessions[0]
    assert first.status == "completed"
    s1 = env.target.session_dir(first.label)
    counts = _members(s1)
    assert counts[digest] == 1, "a message delivered to every account is stored once"
    assert all(n == 1 for n in counts.values()), "no blob is stored twice in a session"
    assert first.stats["blobsShared"] >= len(everyone) - 1
    # Each account's manifest names it, in the session's shared blobs.
    for a in env.site.directory.accounts():
        refs = blobpack.read_manifest(s1 / account_relpath(a.id) / "blobs")
        mine = [x for x in refs if x.digest == digest]
        assert len(mine) == 1 and mine[0].container.startswith("blobs/")

    # Unchanged data (the load has stopped): the full after the next writes no blob bytes
    # (counted two ways).
    quiet = backup.run(env, backup.Request("full")).sessions[0]
    second = backup.run(env, backup.Request("full")).sessions[0]
    s2 = env.target.session_dir(second.label)
    assert second.stats["blobBytesWritten"] == 0 and second.stats["blobBytesLinked"] > 0
    assert _new_blob_bytes(s2) == 0
    # The same in plain files (--noZip): the first writes them, the next links them all.
    plain = backup.run(env, backup.Request("full", zip_mode="noZip")).sessions[0]
    assert _new_blob_bytes(env.target.session_dir(plain.label)) > 0
    plain2 = backup.run(env, backup.Request("full", zip_mode="noZip")).sessions[0]
    assert _new_blob_bytes(env.target.session_dir(plain2.label)) == 0
    assert plain2.stats["blobBytesWritten"] == 0

    # A session of links restores as well as one of copies, after the first is deleted.
    total, before = digests(h)
    shutil.rmtree(s1)
    shutil.rmtree(env.target.session_dir(quiet.label))
    victim = everyone[0]
    out = restore.run(env, restore.Request(accounts=(victim,), label=second.label,
                                           full_only=True), online=True)
    assert out.restored == [victim]
    assert digests(h) == (total, before)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=300)


def test_abort_and_sigkill_during_a_session(make_store, tmp_path: Path) -> None:
    h = make_store("primary")
    h.start()
    cfg, t = str(h.cfg), str(tmp_path / "backup")
    r = loadgen(h.settings.store_socket, accounts=8, ops=200, seed=8, workers=4)
    assert r.errors == 0
    tgt = target.Target(Path(t))
    # The test holds mailboxes in maintenance (as a running restore would), one per worker of
    # the session from the third account on, so the session waits there: deterministic moments
    # to abort it and to kill it.
    gate = Directory(h.settings.directory_path)
    workers = Env.__dataclass_fields__["workers"].default
    held_accts = sorted(gate.accounts(), key=lambda a: a.email)[2:2 + workers]
    third = held_accts[0]

    def hold() -> ExitStack:
        stack = ExitStack()
        for a in held_accts:
            assert a.mailbox_id is not None
            stack.enter_context(gate.maintenance(a.mailbox_id))
        return stack

    # zmbackupabort: the session stops after the account in hand and shows as aborted.
    with load_running(h, accounts=8, seed=9, rate=40):
        with hold():
            p = _run("zmbackup", "-f", "-a", "all", "-t", t, "-c", cfg)
            assert p.returncode == 0, p.stderr
            label = p.stdout.strip()
            assert labels.parse(label).kind == "full"
            ab = subprocess.Popen([str(BIN / "zmbackupabort"), "-lb", label, "-t", t, "-c", cfg],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            abort_file = Path(t) / "sessions_tmp" / label / target.ABORT
            deadline = time.monotonic() + 60
            while not abort_file.exists():
                if time.monotonic() > deadline or ab.poll() is not None:
                    ab.kill()
                    pytest.fail(f"zmbackupabort did not ask the session to stop: "
                                f"{ab.communicate()}")
                time.sleep(0.01)
        out, err = ab.communicate(timeout=120)
        assert ab.returncode == 0, err
        assert "completed (aborted by command)" in out
    q = _run("zmbackupquery", "-lb", label, "-v", "-t", t, "-c", cfg)
    assert "Status:  completed (aborted by command)" in q.stdout, q.stdout
    assert f"{third.email}: completed" in q.stdout, q.stdout
    assert q.stdout.count(": completed") == 2 + workers, q.stdout
    assert q.stdout.count(": not started") == 8 - 2 - workers, q.stdout
    info = tgt.session(labels.parse(label))
    assert info.finished and info.record is not None and info.record.status == "aborted"

    # SIGKILL in the middle: the session stays in sessions_tmp/, nothing is left locked.
    with hold():
        proc = subprocess.Popen([str(BIN / "zmbackup"), "-f", "-a", "all", "-sync", "-t", t,
                                 "-c", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        killed = None
        deadline = time.monotonic() + 120
        while killed is None:
            assert time.monotonic() < deadline and proc.poll() is None
            for s in tgt.sessions():
                if s.running and s.record is not None and sum(
                        a.status == "COMPLETED" for a in s.record.accounts) == 2:
                    proc.send_signal(signal.SIGKILL)
                    killed = s.label
            time.sleep(0.01)
        proc.wait(30)
    info = tgt.session(killed)
    assert not info.finished and (Path(t) / "sessions_tmp" / str(killed)).is_dir()
    assert not (Path(t) / "sessions" / str(killed)).exists()
    q = _run("zmbackupquery", "-lb", str(killed), "-t", t, "-c", cfg)
    assert "Status:  missing, incomplete, or invalid" in q.stdout, q.stdout
    with h.client() as c:  # no account stuck in maintenance
        for a in gate.accounts():
            c.deliver(b"Subject: after the crash\r\n\r\nhi\r\n", [a.email])
    assert info.record is not None
    done = next(a for a in info.record.accounts if a.status == "COMPLETED")
    refused = _run("zmrestore", "-a", done.email, "-lb", str(killed), "-t", t, "--config", cfg)
    assert refused.returncode == 5 and "not complete" in refused.stderr, refused.stderr
    ok = _run("zmrestore", "-a", done.email, "-lb", str(killed), "--allowIncomplete", "-t", t,
              "--config", cfg, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["restored"] == [done.email]
    # The target takes new sessions (the killed one's locks died with it).
    assert _run("zmbackup", "-i", "-sync", "-t", t, "-c", cfg).returncode == 0
    gate.close()


def test_auto_grouped_sessions_redo_logs_deletion_and_dumps(make_store, tmp_path: Path) -> None:
    h = make_store("primary", sections={"redolog": {"rollover_size_kb": 256}})
    h.start()
    day = labels.DAY_MS
    clock = {"now": 1_900_000_000_000}
    env = make_env(h, tmp_path / "backup", now_ms=lambda: clock["now"])
    d = env.site.directory
    for name, value in (("zimbraBackupMode", ["Auto-Grouped"]),
                        ("zimbraBackupAutoGroupedNumGroups", ["3"])):
        d.set_attr("global", name, value)
    localconfig.edit(h.settings.state_dir, ["mysql_backup_retention=2",
                                            "backup_archived_redolog_keep_time=0"])
    env = make_env(h, tmp_path / "backup", now_ms=lambda: clock["now"])
    assert env.config.auto_grouped and env.config.groups == 3
    r = loadgen(h.settings.store_socket, accounts=6, ops=150, seed=2, workers=2)
    assert r.errors == 0
    with pytest.raises(UsageError, match="Auto-Grouped"):
        backup.run(env, backup.Request("incr"))
    sizes = []
    for i in range(4):
        with load_running(h, accounts=6, seed=20 + i, rate=40):
            s = backup.run(env, backup.Request("full")).sessions[0]
        sizes.append(len(s.accounts))
        assert s.status == "completed" and s.mode == "Auto-Grouped"
        assert s.redologs and (env.target.session_dir(s.label) / "redologs" / s.redologs[0]
                               ).is_file()
        clock["now"] += day
    assert sizes == [6, 2, 2, 2]
    assert len(list(env.target.mysql_dir.glob("mysql-*.sql.gz"))) == 2
    # Restore from auto-grouped sessions: the full of each account plus the redo logs
    # later sessions kept.
    total, before = digests(h)
    out = restore.run(env, restore.Request(accounts=None), online=True)
    assert len(out.restored) == 6 and not out.failed
    assert digests(h) == (total, before)
    # Deleting the first session by label keeps what the others need.
    first = env.target.sessions()[0]
    p = deletion.plan(env.target.sessions(), labels.DeleteSpec(label=first.label),
                      now_ms=clock["now"], redologs=deletion.redologs_of(env.target))
    deletion.execute(env.target, p)
    assert [x.label for x in p.sessions] == [first.label]
    left = {e.latest_full for e in env.target.accounts()}
    assert str(first.label) not in left
