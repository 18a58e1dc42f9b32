"""A benchmark's work folder: checked for room before, removed after, whatever the exit.

The disk is shared: a benchmark that leaves its stores behind (tens of GB at 1M ops) fills it for
everyone. `work_folder` keeps three promises:
- before: the file system has room for the run's estimate plus a margin (`VolumeError`, exit 4,
  naming the folder, the free and the needed space, otherwise), and folders of earlier runs of
  the same benchmark whose process is gone (killed with SIGKILL, or the machine rebooted) are
  removed, their MariaDB servers stopped first;
- during: SIGTERM and SIGHUP end the run as Ctrl-C does (`Interrupted`, exit 130), so the
  clean-up below runs instead of the process vanishing with its folder;
- after (return, error or signal): every store under the folder (a `standby.toml` one level
  down) is stopped and the folder removed, unless asked to keep it.
The folder holds `owner.pid` (the benchmark's pid) from the moment it exists; that file is what
tells a live run's folder from an abandoned one (a kept folder holds `kept` and is never swept).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from standby import _process
from standby import settings as settings_mod
from standby.errors import Interrupted, StandbyError, VolumeError
from standby.fsutil import syncfs
from standby.store import control

# Seconds to wait after removing a store (a few hundred thousand files) and writing the removal
# back (syncfs), before the next measurement. ext4 without a journal (this machine's root file
# system) will not reuse an inode freed less than 60 s ago, or 6 min while its inode table block
# is unwritten: each new file's allocation walks past every such inode, reading its table block
# from the buffer cache, and a file create costs 10-20 times its settled cost (perf: most of the
# time in `recently_deleted`). Measured here: 100k files removed, synced, then creates cost
# 227 and 175 us/file 0 and 20 s after, 9.5 us/file from 41 s on (the removal took 15 s). A
# store created there at once dirties those blocks again, so this pause only shortens the
# slowdown; a benchmark with room keeps its stores instead (`bench.failover`).
SETTLE_S = 65.0
OWNER = "owner.pid"
KEPT = "kept"  # a folder kept on request (--keep): never swept
MARGIN_BYTES = 5 << 30  # left free for everyone else however large the estimate


def stores_under(base: Path) -> list[Path]:
    """The store configs one level under a work folder (`<store>/standby.toml`)."""
    return sorted(base.glob("*/standby.toml"))


def stop_stores(base: Path, say: Callable[[str], None]) -> None:
    for cfg in stores_under(base):
        try:
            s = settings_mod.load(cfg)
            if s is not None:
                control.stop(s, timeout=30)
        except StandbyError as e:
            say(f"clean-up of {cfg.parent}: {e}")


def _owner(d: Path) -> int | None:
    try:
        return int((d / OWNER).read_text().strip())
    except (OSError, ValueError):
        return None


def sweep_abandoned(parent: Path, prefix: str, say: Callable[[str], None]) -> list[Path]:
    """Remove `prefix*` folders in `parent` whose owner is dead (or that never got an owner
    file and are older than a day), unless kept; returns the folders removed."""
    removed = []
    for d in sorted(parent.glob(f"{prefix}*")):
        if not d.is_dir() or (d / KEPT).exists():
            continue
        pid = _owner(d)
        if pid is not None and _process.alive(pid):
            continue
        if pid is None:
            try:
                if d.stat().st_mtime > time.time() - 86_400:
                    continue  # perhaps a run that is creating its owner file right now
            except OSError:
                continue
        say(f"removing {d}, left by a run that is gone")
        stop_stores(d, say)
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def drop_volumes(s: settings_mod.Settings, volumes: tuple[str, ...],
                 say: Callable[[str], None], *, settle_s: float = SETTLE_S,
                 keep_if_room: int | None = None) -> bool:
    """Stop a store measured already and remove these volumes of it, then let the file system
    settle (the removal written back, then `settle_s`) so the next measurement does not pay for
    the removal; True if removed. With `keep_if_room`, a store is only stopped while the disk
    has that many bytes free beside it plus the margin: it goes with the work folder, and the
    next measurement pays nothing (the pause only shortens the slowdown, see `SETTLE_S`)."""
    control.stop(s, timeout=60)
    if keep_if_room is not None and \
            shutil.disk_usage(s.state_dir.parent).free >= keep_if_room + MARGIN_BYTES:
        say(f"kept the volumes of {s.state_dir.parent.name} (room to spare): they go with the "
            "folder")
        return False
    for v in volumes:
        shutil.rmtree(getattr(s.volumes, v).path, ignore_errors=True)
    say(f"removed the {', '.join(volumes)} volumes of {s.state_dir.parent.name}; waiting "
        f"{settle_s:.0f} s for the file system")
    syncfs(s.state_dir.parent)
    time.sleep(settle_s)
    return True


def folder_bytes(d: Path) -> int:
    """Bytes allocated on disk under `d` (what the run costs the file system)."""
    total = 0
    for root, _dirs, files in os.walk(d):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def check_room(parent: Path, need_bytes: int) -> None:
    """Refuse to start when `parent`'s file system lacks `need_bytes` plus the margin."""
    u = shutil.disk_usage(parent)
    if u.free < need_bytes + MARGIN_BYTES:
        raise VolumeError(
            f"{parent}: {u.free / 2**30:.1f} GB free, this benchmark needs about "
            f"{need_bytes / 2**30:.1f} GB plus {MARGIN_BYTES / 2**30:.0f} GB left for others; "
            "free some space, pass a smaller size, or --workdir on another file system")


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Interrupted` in the main thread while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    owner = os.getpid()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked worker inherited this; its pool is stopping it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Interrupted(f"benchmark stopped by signal {signal.Signals(signum).name}; its "
                          "work folder was removed")

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextmanager
def work_folder(prefix: str, *, workdir: Path | None, need_bytes: int, keep: bool = False,
                say: Callable[[str], None] = lambda m: None) -> Iterator[Path]:
    """A fresh `prefix*` folder under `workdir` (default: the temp folder), as promised above."""
    parent = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    sweep_abandoned(parent, prefix, say)
    check_room(parent, need_bytes)
    with _signals_interrupt():
        base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        try:
            (base / OWNER).write_text(f"{os.getpid()}\n")
            yield base
        finally:
            stop_stores(base, say)
            if keep:
                (base / KEPT).touch()
                say(f"kept {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)
