"""Stopping what runs: `zmbackupabort -lb LABEL` (a backup session) and `zmbackupabort -r` (the
running restore).

A restore registers itself in `<state_dir>/classic/`: `restore.lock` (flock held for its life)
and, when asked to stop, `restore.abort`; it checks between accounts, and on its way out writes
`restore.result` (the accounts it did not restore), which `zmbackupabort -r` waits for and
prints. A backup session is asked through its own folder (`target.request_abort`), and
`wait_session` waits until it has left `sessions_tmp/`. Locks die with their process, so a
killed restore or session never looks like a running one.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from standby import _process, fsutil
from standby.classic import target as target_mod
from standby.classic import xmlfiles
from standby.classic.labels import Label
from standby.classic.target import SessionInfo, Target
from standby.errors import NotFound, ServiceError, StateConflict

LOCK, ABORT, RESULT = "restore.lock", "restore.abort", "restore.result"


def folder(state_dir: Path) -> Path:
    d = state_dir / "classic"
    d.mkdir(parents=True, exist_ok=True)
    return d


class RestoreRun:
    """The registration of the one running restore of a server."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = folder(state_dir)
        self._fd: int | None = None

    def __enter__(self) -> RestoreRun:
        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateConflict("another restore is running on this server",
                                hint="wait for it, or stop it with `zmbackupabort -r`") from None
        for stale in (ABORT, RESULT):
            (self.dir / stale).unlink(missing_ok=True)
        self._fd = fd
        return self

    def should_stop(self) -> bool:
        return (self.dir / ABORT).exists()

    def finish(self, not_restored: list[str], aborted: bool) -> None:
        xmlfiles.write_atomic(self.dir / RESULT, json.dumps(
            {"aborted": aborted, "not_restored": not_restored}).encode())

    def __exit__(self, *exc: object) -> None:
        (self.dir / ABORT).unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def abort_restore(state_dir: Path, *, timeout_s: float = 3600.0,
                  sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Ask the running restore to stop after the current account; wait for it and return the
    accounts it did not restore."""
    d = folder(state_dir)
    if not fsutil.flock_held(d / LOCK):
        raise NotFound("no restore is running on this server")
    (d / ABORT).touch()
    deadline = time.monotonic() + timeout_s
    while fsutil.flock_held(d / LOCK):
        if time.monotonic() > deadline:
            raise StateConflict(f"the restore did not stop within {timeout_s:.0f} s")
        sleep(0.2)
    try:
        result = json.loads((d / RESULT).read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [str(a) for a in result.get("not_restored", [])]


def abort_session(target: Target, label: Label, *, timeout_s: float = 3600.0,
                  sleep: Callable[[float], None] = time.sleep) -> SessionInfo:
    """zmbackupabort -lb: ask the session to stop and wait until it has ended."""
    target_mod.request_abort(target, label)
    deadline = time.monotonic() + timeout_s
    while True:
        info = target.session(label)
        if not info.running:
            return info
        if time.monotonic() > deadline:
            raise StateConflict(f"the backup session {label} did not stop within "
                                f"{timeout_s:.0f} s")
        sleep(0.2)


def start_background(argv: list[str], *, log_path: Path, target: Target, label: Label,
                     timeout_s: float = 60.0,
                     sleep: Callable[[float], None] = time.sleep) -> int:
    """Run `python -m standby.cli.classic ARGV` detached (a session in the background, as
    zmbackup without -sync) and wait until its session `label` runs; returns its pid."""
    pid = _process.daemon(_process.Command((sys.executable, "-m", "standby.cli.classic",
                                            *argv)), log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            info = target.session(label)
            if info.running or info.finished:
                return pid
        except NotFound:
            pass
        if not _process.alive(pid):
            break
        sleep(0.05)
    tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] \
        if log_path.exists() else []
    raise ServiceError(f"the background backup session {label} did not start"
                       + (f": {tail[0]}" if tail else ""), hint=f"see {log_path}")
