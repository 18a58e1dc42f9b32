"""The only module that starts processes.

Commands are frozen `Command` values holding an argv tuple; nothing here ever uses a shell, and
remote commands are quoted with `shlex.join` by whoever builds them. Three ways to start one:

- `run(cmd)`: wait for it, capture its output, raise `CommandFailed` on a non-zero exit;
- `spawn(cmd)`: start it attached (pipes for streaming: `zfs send | zstd | ...`), caller waits;
- `daemon(cmd)`: start it detached in its own session with output to a log file, for the
  long-lived services (a private `mariadbd`, the store service, `zfs-fuse`, `moto_server`).

Worker processes of this program (the fast replay's, the index catch-up's) are forked inside
`forking()`, which keeps a child from ever finalising an object its parent made.

Two compositions on top: `over_ssh(cmd, remote)` turns a command into the `ssh` command that runs
it on another host (the only place an ssh argv is built; the remote command is one word made with
`shlex.join`), and `pipe(sender, receiver)` runs one command into another (`zfs send | zfs recv`)
and checks both exit codes, naming the one that failed first.

Builders elsewhere return `Command`s; parsers elsewhere take bytes. Keeping the three apart lets
tests check argv without running anything.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import multiprocessing as mp
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import partial
from dataclasses import dataclass, field
from multiprocessing.context import ForkContext
from pathlib import Path
from typing import IO

from standby.errors import CommandFailed, CommandNotFound, ServiceError, UsageError


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
    "ssh": "apt-get install openssh-client",
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


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when `parent` dies (Linux), so a killed replay,
    catch-up, backup or restore leaves no worker writing behind it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


@contextmanager
def forking() -> Iterator[ForkContext]:
    """The context to fork this program's worker processes in (start them inside the block).

    A forked child has its parent's objects but only the thread that forked. If the child's
    garbage collector frees a parent's object whose finaliser waits for the parent's threads (a
    multi-threaded zstd compressor left in a reference cycle by shipping), the child hangs
    forever. So the parent's garbage is collected first, and what is left is frozen for the
    fork: the children never collect it. The parent collects normally again after the block.
    """
    gc.collect()
    gc.freeze()
    try:
        yield mp.get_context("fork")
    finally:
        gc.unfreeze()


# --------------------------------------------------------------------------------------------
# Remote commands and pipelines


@dataclass(frozen=True)
class Remote:
    """A host that commands run on over ssh: `user@host`, a port, a key file, `-o` options.

    `BatchMode=yes` by default: from cron there is nobody to type a password or accept a host
    key, so ssh must fail at once instead of waiting for a prompt."""

    host: str
    user: str | None = None
    port: int | None = None
    identity: Path | None = None
    options: tuple[str, ...] = ("BatchMode=yes",)
    program: str = "ssh"

    def __post_init__(self) -> None:
        for what, value in (("host", self.host), ("user", self.user)):
            if value is None:
                continue
            # A leading dash would be read as an ssh option (`-oProxyCommand=...`).
            if not value or value.startswith("-") or "@" in value or any(
                    c.isspace() or c in "/\\'\"" for c in value):
                raise UsageError(f"{value!r} is not an ssh {what} name",
                                 hint="write the target as user@host/path")
        if self.port is not None and not 0 < self.port < 65536:
            raise UsageError(f"ssh port {self.port} is out of range", hint="use 1-65535")

    def __str__(self) -> str:
        who = f"{self.user}@{self.host}" if self.user else self.host
        return f"{who}:{self.port}" if self.port is not None else who


def over_ssh(cmd: Command, remote: Remote) -> Command:
    """The `ssh` command that runs `cmd` on `remote`.

    The remote command is a single word made with `shlex.join`, so the remote shell sees exactly
    `cmd.argv`; `cmd.env` becomes an `env K=V ...` prefix (ssh forwards no environment). A
    working directory cannot be carried over and is refused. The timeout stays with the local
    ssh process. Pure: runs nothing."""
    if cmd.cwd is not None:
        raise ValueError(f"over_ssh: {cmd.argv[0]!r} has a working directory, which ssh cannot "
                         "carry; use absolute paths")
    words = cmd.argv
    if cmd.env:
        words = ("env", *(f"{k}={v}" for k, v in sorted(cmd.env.items())), *words)
    argv: list[str] = [remote.program]
    for opt in remote.options:
        argv += ["-o", opt]
    if remote.port is not None:
        argv += ["-p", str(remote.port)]
    if remote.identity is not None:
        argv += ["-i", os.fspath(remote.identity)]
    if remote.user:
        argv += ["-l", remote.user]
    argv += ["--", remote.host, shlex.join(words)]
    return Command(tuple(argv), timeout=cmd.timeout)


def located(cmd: Command, remote: Remote | None) -> Command:
    """`cmd` as run on `remote` (over ssh), or unchanged to run here when `remote` is None."""
    return cmd if remote is None else over_ssh(cmd, remote)


@dataclass(frozen=True)
class Piped:
    """What `pipe` saw: both results (the sender's stdout went to the receiver, so its `stdout`
    is empty) and the number of bytes that passed, when they went through Python."""

    sender: Result
    receiver: Result
    nbytes: int | None


def pipe(sender: Command, receiver: Command, *,
         on_chunk: Callable[[bytes], None] | None = None, chunk_size: int = 1 << 20,
         timeout: float | None = None,
         on_count: Callable[[int], None] | None = None) -> Piped:
    """Run `sender` with its stdout into `receiver`'s stdin (`zfs send | zfs recv`); wait for
    both and check both exit codes.

    Without `on_chunk` the two are joined by an OS pipe and no byte passes through Python. With
    it, each chunk read from the sender is written to the receiver and then given to `on_chunk`
    (to count, hash, show progress, limit the rate); an exception it raises stops both processes
    and propagates, which is also how a test interrupts a stream mid-way. `on_count` (instead
    of `on_chunk`) is given only each chunk's size: the bytes move from pipe to pipe inside the
    kernel (`os.splice`, through pipes widened to `chunk_size`), as fast as the OS pipe, and
    still counted and paced; where there is no splice they pass through Python.

    Raises `CommandFailed` for the process that failed first: the receiver when it exited
    non-zero and the sender only saw the pipe close, otherwise the sender (a receiver reading a
    truncated stream fails too, but the sender's error is the cause). On any error, and when
    `timeout` seconds (for the whole pipe) pass, both processes are killed and reaped; a timeout
    raises `ServiceError`."""
    with (tempfile.TemporaryFile() as s_err, tempfile.TemporaryFile() as r_err,
          tempfile.TemporaryFile() as r_out,
          _supervised(timeout, f"`{sender.argv[0]} | {receiver.argv[0]}`") as procs):
        snd = spawn(sender, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=s_err)
        procs.append(snd)
        assert snd.stdout is not None
        nbytes: int | None = None
        pumped = on_chunk is not None or on_count is not None
        try:
            rcv = spawn(receiver, stdin=subprocess.PIPE if pumped else snd.stdout,
                        stdout=r_out, stderr=r_err)
            procs.append(rcv)
            if on_count is not None and on_chunk is None and hasattr(os, "splice"):
                assert rcv.stdin is not None
                nbytes = _splice(snd.stdout, rcv.stdin, on_count, chunk_size)
            elif pumped:
                assert rcv.stdin is not None
                each = on_chunk if on_chunk is not None else _sized(on_count)
                nbytes = _pump(iter(partial(snd.stdout.read, chunk_size), b""), rcv.stdin,
                               each)
        finally:
            # The receiver holds the read end (or we stopped reading): ours must go, or the
            # sender would block on a full pipe instead of seeing it close.
            snd.stdout.close()
        snd.wait()
        rcv.wait()
        sres = Result(sender.argv, snd.returncode, b"", _contents(s_err))
        rres = Result(receiver.argv, rcv.returncode, _contents(r_out), _contents(r_err))
    _check_pipe(sres, rres)
    return Piped(sres, rres, nbytes)


def read_from(cmd: Command, on_chunk: Callable[[bytes], None], *, chunk_size: int = 1 << 20,
              timeout: float | None = None) -> Result:
    """Run `cmd` and give its stdout to `on_chunk`, chunk by chunk (a `zfs send` into an
    uploader); raise `CommandFailed` if it exits non-zero. An exception from `on_chunk`, or the
    `timeout` (`ServiceError`), kills it. The returned `stdout` is empty: it went to `on_chunk`."""
    with (tempfile.TemporaryFile() as err,
          _supervised(timeout, f"`{cmd.argv[0]}`") as procs):
        proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        procs.append(proc)
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(chunk_size):
                on_chunk(chunk)
        finally:
            proc.stdout.close()
        proc.wait()
        res = Result(cmd.argv, proc.returncode, b"", _contents(err))
    _check(res)
    return res


def write_into(cmd: Command, chunks: Iterable[bytes], *, timeout: float | None = None) -> Result:
    """Run `cmd` with `chunks` on its stdin (a download into `zfs recv`), then close it and
    check the exit code (`CommandFailed`). An exception while producing the chunks, or the
    `timeout` (`ServiceError`), kills the command, so a receiver never takes a truncated
    stream for a complete one. A command that exits before reading everything fails with its
    own error."""
    with (tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err,
          _supervised(timeout, f"`{cmd.argv[0]}`") as procs):
        proc = spawn(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err)
        procs.append(proc)
        assert proc.stdin is not None
        _pump(chunks, proc.stdin)
        proc.wait()
        res = Result(cmd.argv, proc.returncode, _contents(out), _contents(err))
    _check(res)
    return res


@contextmanager
def _supervised(timeout: float | None, what: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The processes appended to the yielded list are killed and reaped if the block raises,
    and when `timeout` seconds pass (then `ServiceError`, once the block is left)."""
    procs: list[subprocess.Popen[bytes]] = []
    expired = threading.Event()
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, _expire, (procs, expired))
        timer.daemon = True
        timer.start()
    try:
        yield procs
    except BaseException:
        for p in procs:
            _kill_reap(p)
        raise
    finally:
        if timer is not None:
            timer.cancel()
    if expired.is_set():
        raise ServiceError(f"{what} did not finish within {timeout} s and was stopped")


def _sized(on_count: Callable[[int], None] | None) -> Callable[[bytes], None] | None:
    return None if on_count is None else (lambda chunk: on_count(len(chunk)))


def _splice(src: IO[bytes], dst: IO[bytes], on_count: Callable[[int], None],
            chunk_size: int) -> int:
    """Move everything from the pipe `src` into the pipe `dst` in the kernel, giving each
    move's size to `on_count`, and close `dst`; stop early if `dst`'s reader exits."""
    for f in (src, dst):
        with suppress(OSError):  # a wider pipe lets both ends run while we move a chunk
            fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, chunk_size)
    n = 0
    try:
        while k := os.splice(src.fileno(), dst.fileno(), chunk_size):
            n += k
            on_count(k)
    except BrokenPipeError:
        pass  # the reader exited early; its exit code says why
    # As in `_pump`: closed only with every byte in.
    with suppress(BrokenPipeError):
        dst.close()
    return n


def _pump(chunks: Iterable[bytes], dst: IO[bytes],
          on_chunk: Callable[[bytes], None] | None = None) -> int:
    """Write `chunks` into `dst` and close it; stop early if `dst`'s reader exits."""
    n = 0
    try:
        for chunk in chunks:
            dst.write(chunk)
            n += len(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
    except BrokenPipeError:
        pass  # the reader exited early; its exit code says why
    # Closed only here, with every chunk in: on an error `_supervised` kills the reader first,
    # so that it never sees the end of a truncated stream and takes it for complete.
    with suppress(BrokenPipeError):
        dst.close()
    return n


def _check(res: Result) -> None:
    if res.returncode != 0:
        raise CommandFailed(res.argv, res.returncode, res.stderr.decode("utf-8", "replace"))


def _expire(procs: list[subprocess.Popen[bytes]], expired: threading.Event) -> None:
    expired.set()
    for p in procs:
        if p.poll() is None:
            p.kill()


def _kill_reap(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.kill()
    p.wait()
    if p.stdin is not None:
        with suppress(OSError):  # unflushed bytes to a dead reader
            p.stdin.close()


def _contents(f: IO[bytes]) -> bytes:
    f.seek(0)
    return f.read()


def _broken_pipe(r: Result) -> bool:
    return r.returncode == -signal.SIGPIPE or b"Broken pipe" in r.stderr


def _check_pipe(sres: Result, rres: Result) -> None:
    def failed(r: Result) -> CommandFailed:
        return CommandFailed(r.argv, r.returncode, r.stderr.decode("utf-8", "replace"))

    if rres.returncode != 0 and (sres.returncode == 0 or _broken_pipe(sres)):
        raise failed(rres)
    if sres.returncode != 0:
        e = failed(sres)
        if rres.returncode != 0:
            e.add_note(f"{rres.argv[0]!r} then failed too (exit code {rres.returncode})")
        raise e
