"""A backup target: the guide's "Directory Structure for Backup Files", and the checks before use.

    <target>/accounts.xml                 email -> zimbraId -> latest full label
    <target>/sessions/<label>/            a finished session (completed, aborted or failed)
        session.xml                       type, times, status, redo range, accounts, stats
        report.txt                        the backup report
        blobs/                            blobs shared among accounts, stored once per session
        sys/                              db/ (global tables: Parquet + db_schema.xml),
                                          localconfig.xml, ldap.xml (the whole directory)
        accounts/<id[0:3]>/<id[3:6]>/<zimbraId>/
            meta.xml ldap.xml db/ blobs/ index/
        redologs/                         auto-grouped sessions keep their redo logs here
    <target>/sessions_tmp/<label>/        a session being written, or one a crash interrupted
    <target>/redologs/                    redo logs incremental backups moved off the server
    <target>/mysql/                       gzipped database dumps (mysql_backup_retention)

Invariants: a session is written only under `sessions_tmp/<label>/` while it runs (its `.lock`
held by the writing process) and renamed into `sessions/` as a whole once `session.xml` records
how it ended; a crash leaves it in `sessions_tmp/`. Labels and account ids pass
`labels.check_name` before they become paths. `accounts.xml` is replaced atomically under the
target's lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from standby import fsutil
from standby.classic import labels, xmlfiles
from standby.classic.labels import Label, MinFree
from standby.classic.xmlfiles import AccountEntry, Session
from standby.errors import FormatError, NotFound, StateConflict, UsageError, VolumeError

SESSIONS, TMP, REDOLOGS, MYSQL = "sessions", "sessions_tmp", "redologs", "mysql"
ACCOUNTS_XML, SESSION_XML, REPORT = "accounts.xml", "session.xml", "report.txt"
LOCK, ABORT = ".lock", ".abort"
PROGRESS_EVERY_S = 0.5
INTERRUPTED = "missing, incomplete, or invalid"


@dataclass(frozen=True)
class SessionInfo:
    """A session as the target shows it: its record (None if unreadable) and where it is."""

    label: Label
    path: Path
    record: Session | None
    finished: bool  # under sessions/ (else sessions_tmp/)
    running: bool  # its writer holds the lock

    @property
    def status(self) -> str:
        if self.running:
            return "in progress"
        if not self.finished or self.record is None:
            return INTERRUPTED
        return self.record.status


def account_relpath(zimbra_id: str) -> Path:
    labels.check_name(zimbra_id, what="account id")
    return Path("accounts") / zimbra_id[0:3] / zimbra_id[3:6] / zimbra_id


def _lock(path: Path, what: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateConflict(f"{what} is in use by another backup, restore or deletion",
                            hint="`zmbackupquery` shows running sessions; wait for it to end "
                            "or stop it with `zmbackupabort`") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    return fd


class Target:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- layout -----------------------------------------------------------------------------
    @property
    def sessions_dir(self) -> Path:
        return self.root / SESSIONS

    @property
    def tmp_dir(self) -> Path:
        return self.root / TMP

    @property
    def redologs_dir(self) -> Path:
        return self.root / REDOLOGS

    @property
    def mysql_dir(self) -> Path:
        return self.root / MYSQL

    def session_dir(self, label: Label | str) -> Path:
        return self.sessions_dir / labels.check_name(str(label))

    def tmp_session_dir(self, label: Label | str) -> Path:
        return self.tmp_dir / labels.check_name(str(label))

    # -- checks -----------------------------------------------------------------------------
    def check_usable(self, *, create: bool) -> None:
        """The target exists (or is created) and is a writable folder."""
        r = self.root
        if not r.exists():
            if not create:
                raise NotFound(f"the backup target {r} does not exist",
                               hint="give the target of your backups with -t")
            try:
                r.mkdir(parents=True)
            except OSError as e:
                raise VolumeError(f"cannot create the backup target {r}: {e.strerror}") from e
        if not r.is_dir():
            raise VolumeError(f"the backup target {r} is not a folder")
        if create and not os.access(r, os.W_OK | os.X_OK):
            raise VolumeError(f"the backup target {r} is not writable by this user",
                              hint="fix its permissions or choose another target with -t")
        if create:
            for d in (self.sessions_dir, self.tmp_dir, self.redologs_dir):
                try:
                    d.mkdir(exist_ok=True)
                except OSError as e:
                    raise VolumeError(f"cannot create {d}: {e.strerror}") from e

    def space(self) -> tuple[int, int]:
        """(free bytes, total bytes) of the file system the target is on."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def check_min_free(self, min_free: MinFree,
                       space: Callable[[], tuple[int, int]] | None = None) -> None:
        """Refuse to start a session when the target has less free space than
        zimbraBackupMinFreeSpace asks for (0: the check is off)."""
        if min_free.disabled:
            return
        free, total = (space or self.space)()
        need = min_free.required(total)
        if free < need:
            raise VolumeError(
                f"the backup target {self.root} has {labels.format_bytes(free)} free, less than "
                f"the {labels.format_bytes(need)} zimbraBackupMinFreeSpace ({min_free}) requires;"
                " the backup session was not started",
                hint="free space on the target, or lower it with `zmprov mcf "
                "zimbraBackupMinFreeSpace VALUE`")

    # -- locks ------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """The target's lock: one writer of sessions, accounts.xml and redologs/ at a time."""
        self.check_usable(create=True)
        fd = _lock(self.tmp_dir / LOCK, f"the backup target {self.root}")
        try:
            yield
        finally:
            os.close(fd)

    # -- accounts.xml -----------------------------------------------------------------------
    def accounts(self) -> list[AccountEntry]:
        p = self.root / ACCOUNTS_XML
        try:
            root = xmlfiles.read_xml(p, root="accounts")
        except FileNotFoundError:
            return []
        return xmlfiles.accounts_from_xml(root, where=str(p))

    def write_accounts(self, entries: list[AccountEntry]) -> None:
        xmlfiles.write_xml(self.root / ACCOUNTS_XML, xmlfiles.accounts_to_xml(entries))

    # -- sessions ---------------------------------------------------------------------------
    def sessions(self) -> list[SessionInfo]:
        """Every session of the target, finished or not, in label order."""
        out = []
        for finished, d in ((True, self.sessions_dir), (False, self.tmp_dir)):
            if not d.is_dir():
                continue
            for e in os.scandir(d):
                if not e.is_dir():
                    continue
                try:
                    lb = labels.parse(e.name)
                except UsageError:  # a stray folder is not a session
                    continue
                out.append(self._info(lb, Path(e.path), finished))
        out.sort(key=lambda i: i.label)
        return out

    def _info(self, lb: Label, path: Path, finished: bool) -> SessionInfo:
        rec: Session | None
        try:
            rec = xmlfiles.session_from_xml(xmlfiles.read_xml(path / SESSION_XML,
                                                              root="backupSession"),
                                            where=str(path / SESSION_XML))
        except (FileNotFoundError, FormatError):
            rec = None
        running = not finished and fsutil.flock_held(path / LOCK)
        return SessionInfo(lb, path, rec, finished, running)

    def session(self, label: Label) -> SessionInfo:
        for finished, d in ((True, self.session_dir(label)), (False, self.tmp_session_dir(label))):
            if d.is_dir():
                return self._info(label, d, finished)
        raise NotFound(f"no backup session labelled {label} in {self.root}",
                       hint="`zmbackupquery` lists the sessions of the target")

    def labels(self) -> list[Label]:
        return [i.label for i in self.sessions()]


class SessionDir:
    """A session being written: `sessions_tmp/<label>/`, its lock held until `finish` moves it
    into `sessions/` or `discard` removes it."""

    def __init__(self, target: Target, label: Label) -> None:
        self.target = target
        self.label = label
        self.root = target.tmp_session_dir(label)
        try:
            self.root.mkdir(parents=True)
        except FileExistsError:
            raise StateConflict(f"a session labelled {label} already exists") from None
        self._fd: int | None = _lock(self.root / LOCK, f"session {label}")
        self._progress_at = -PROGRESS_EVERY_S
        self._progress_lock = threading.Lock()

    @classmethod
    def reserve(cls, target: Target, kind: str, now_ms: int) -> Label:
        """A label no session of the target uses yet (the next millisecond if taken)."""
        taken = {str(lb) for lb in target.labels()}
        lb = labels.make(kind, now_ms)
        while str(lb) in taken:
            lb = labels.make(kind, lb.ms + 1)
        return lb

    def abort_requested(self) -> bool:
        return (self.root / ABORT).exists()

    def _release(self) -> None:
        for name in (ABORT, LOCK):
            (self.root / name).unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self, session: Session) -> Path:
        """Write session.xml, make the session durable, move it into sessions/."""
        xmlfiles.write_xml(self.root / SESSION_XML, xmlfiles.session_to_xml(session),
                           durable=False)
        fsutil.syncfs(self.root)
        dest = self.target.session_dir(self.label)
        self._release()
        os.rename(self.root, dest)
        fsutil.fsync_dir(self.target.tmp_dir)
        fsutil.fsync_dir(self.target.sessions_dir)
        return dest

    def write_progress(self, session: Session, *, now: float | None = None) -> None:
        """session.xml while running, so zmbackupquery can show progress (at most once a
        second when `now`, a monotonic clock, is given)."""
        with self._progress_lock:
            if now is not None and now - self._progress_at < PROGRESS_EVERY_S:
                return
            self._progress_at = now if now is not None else 0.0
            xmlfiles.write_xml(self.root / SESSION_XML,
                               xmlfiles.session_to_xml(session), durable=False)

    def discard(self) -> None:
        """Remove everything the session wrote (a failed session: a full disk)."""
        self._release()
        shutil.rmtree(self.root, ignore_errors=True)


def request_abort(target: Target, label: Label) -> SessionInfo:
    """Ask the running session `label` to stop (zmbackupabort -lb)."""
    info = target.session(label)
    if not info.running:
        raise StateConflict(f"the backup session {label} is not running (status: "
                            f"{info.status})")
    try:
        fd = os.open(info.path / ABORT, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError as e:
        if e.errno == errno.ENOENT:  # it finished just now
            return target.session(label)
        raise
    return info


def is_disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)
