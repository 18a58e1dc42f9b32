"""The only module that starts processes.

Commands are frozen `Command` values holding an argv tuple; nothing here ever uses a shell, and
remote commands are quoted with `shlex.join` by whoever builds them. Three ways to start one:

- `run(cmd)`: wait for it, capture its output, raise `CommandFailed` on a non-zero exit;
- `spawn(cmd)`: start it attached (pipes for streaming: `zfs send | zstd | ...`), caller waits;
- `daemon(cmd)`: start it detached in its own session with output to a log file, for the
  long-lived services (a private `mariadbd`, the store service, `zfs-fuse`, `moto_server`).

Builders elsewhere return `Command`s; parsers elsewhere take bytes. Keeping the three apart lets
tests check argv without running anything.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from standby.errors import CommandFailed, CommandNotFound, ServiceError


@dataclass(frozen=True)
class Command:
    """A program and its arguments, plus optional environment additions and working dir."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None

    @classmethod
    def of(cls, *argv: str | os.PathLike[str], **kw: object) -> Command:
        return cls(tuple(os.fspath(a) for a in argv), **kw)  # type: ignore[arg-type]

    def __str__(self) -> str:
        import shlex

        return shlex.join(self.argv)


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def which(program: str) -> str:
    """Absolute path of `program`, or CommandNotFound naming the package that provides it."""
    found = shutil.which(program) or _sbin_which(program)
    if not found:
        raise CommandNotFound(
            f"{program!r} is not installed or not on PATH",
            hint=_PACKAGE_HINTS.get(program, "install it and try again"),
        )
    return found


_PACKAGE_HINTS = {
    "mariadbd": "apt-get install mariadb-server",
    "mariadb-install-db": "apt-get install mariadb-server",
    "zfs": "apt-get install zfs-fuse (or zfsutils-linux)",
    "zpool": "apt-get install zfs-fuse (or zfsutils-linux)",
    "zfs-fuse": "apt-get install zfs-fuse",
    "btrfs": "apt-get install btrfs-progs",
    "mkfs.btrfs": "apt-get install btrfs-progs",
    "lvcreate": "apt-get install lvm2",
    "moto_server": "pip install 'moto[server]'",
}


def _sbin_which(program: str) -> str | None:
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        p = Path(d) / program
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def _env(cmd: Command) -> dict[str, str] | None:
    if not cmd.env:
        return None
    merged = dict(os.environ)
    merged.update(cmd.env)
    return merged


def _resolve(argv: tuple[str, ...]) -> list[str]:
    first = argv[0]
    if os.sep not in first:
        first = which(first)
    return [first, *argv[1:]]


def run(
    cmd: Command,
    *,
    check: bool = True,
    input: bytes | None = None,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
) -> Result:
    """Run to completion and capture output; raise CommandFailed on non-zero when `check`."""
    argv = _resolve(cmd.argv)
    try:
        proc = subprocess.run(
            argv,
            input=input,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=_env(cmd),
            cwd=cmd.cwd,
            timeout=cmd.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ServiceError(f"command {cmd.argv[0]!r} did not finish within {cmd.timeout} s") from e
    except FileNotFoundError as e:
        raise CommandNotFound(f"{cmd.argv[0]!r} could not be started: {e.strerror}") from e
    out = proc.stdout if isinstance(proc.stdout, bytes) else b""
    err = proc.stderr or b""
    if check and proc.returncode != 0:
        raise CommandFailed(cmd.argv, proc.returncode, err.decode("utf-8", "replace"))
    return Result(cmd.argv, proc.returncode, out, err)


def spawn(
    cmd: Command,
    *,
    stdin: int | IO[bytes] | None = None,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    stderr: int | IO[bytes] | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start attached, for streaming pipelines; the caller waits and checks the exit code."""
    return subprocess.Popen(
        _resolve(cmd.argv), stdin=stdin, stdout=stdout, stderr=stderr, env=_env(cmd), cwd=cmd.cwd
    )


def wait_checked(proc: subprocess.Popen[bytes], cmd: Command, timeout: float | None = None) -> int:
    """Wait for a spawned process and raise CommandFailed if it failed."""
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        proc.kill()
        raise ServiceError(f"command {cmd.argv[0]!r} did not finish within {timeout} s") from e
    if rc != 0:
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        raise CommandFailed(cmd.argv, rc, err)
    return rc


def daemon(cmd: Command, *, log_path: Path) -> int:
    """Start detached in a new session, stdout/stderr appended to `log_path`; return its pid.

    The child is not our process group's member, so the CLI exiting does not stop it; it is
    stopped by pid (see `terminate`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            _resolve(cmd.argv),
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(cmd),
            cwd=cmd.cwd,
            start_new_session=True,
        )
    # Reap it in the background if it dies while we are still alive, so it does not linger as a
    # zombie that `alive()` would report as running.
    import threading

    threading.Thread(target=proc.wait, daemon=True).start()
    return proc.pid


def alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):  # it exited between the two looks
        return False


def terminate(pid: int, *, timeout: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """Send `sig`, wait up to `timeout` for exit, then SIGKILL. True if it was running."""
    if not alive(pid):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def kill(pid: int) -> None:
    """SIGKILL at once (crash tests and the failover drill)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
