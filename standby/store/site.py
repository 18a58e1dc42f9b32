"""A `Site`: the open handles of one set of store volumes, built once from `Settings`.

Everything that works on a store's volumes opens a `Site` instead of assembling the pieces
itself: the store service (the `mailboxd` analog), replay, the drill, `digest`, and later pull
and the classic module's restores. It holds

- `db`: the private MariaDB on the db volume (`connect()` is the connection factory), and
  `ensure_schema()`; `database()` keeps it up for a block (started and stopped again if it was
  down);
- `blobs` and `index`: the blob and index stores on their volumes; `directory`: the accounts
  (the LDAP stand-in, opened on first use), whose message lifetimes the purge reads
  (`lifetimes`); `effects`: the one definition of each op's effect;
- the volumes lock: `exclusive()` holds it for a process's life (a second holder is refused,
  exit 5), `locked()` asks whether anyone holds it, `check_stopped()` refuses to go on while a
  store service runs on the volumes;
- the replay marker: `replaying()` marks the volumes incomplete for the duration of a replay and
  clears the mark only when the replay finished; `replay_interrupted()` is what `store start`
  checks.

The lock is an `flock` on a file on the redolog volume, so two configurations naming the same
volumes conflict even when their state directories differ.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from standby import _process, timefmt
from standby import log as slog
from standby import settings as settings_mod
from standby.errors import StateConflict
from standby.fsutil import flock_held
from standby.settings import Settings
from standby.store import schema
from standby.store.blobs import BlobStore
from standby.store.directory import Directory
from standby.store.effects import Effects
from standby.store.index import IndexStore
from standby.store.mariadb import MariaDB
from standby.store.purge import Lifetimes

LOCK_NAME = ".standby-store.lock"
REPLAY_MARKER = "replay.incomplete"
SERVICE_PID = "store.pid"


def mariadb(s: Settings, *, read_only: bool = False, socket: Path | None = None,
            run_dir: Path | None = None) -> MariaDB:
    """The private MariaDB of the settings' db volume (a read-only one on its own socket for
    looking at a stopped store without changing it)."""
    return MariaDB(volume=s.volumes.db.path, socket=socket or s.mariadb_socket,
                   run_dir=run_dir or s.state_dir, settings=s.mariadb, read_only=read_only)


class Site:
    """The volumes of one store, opened. Cheap to build: nothing starts until asked."""

    def __init__(self, settings: Settings, *, db: MariaDB | None = None) -> None:
        s = settings
        self.settings = s
        self.db = db or mariadb(s)
        self.blobs = BlobStore(s.volumes.blob.path, compress=s.store.compress_blobs,
                               threshold=s.store.compression_threshold)
        self.index = IndexStore(s.volumes.index.path)
        log = slog.get("standby.store")
        self.effects = Effects(groups=s.store.mailbox_groups, blobs=self.blobs, index=self.index,
                               on_warning=lambda m: log.warning("effect", msg=m), retention=self)
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, settings: Settings, *, writable: bool = True) -> Site:
        """A site whose four volume paths exist (and are writable, unless not `writable`);
        `VolumeError` (exit 4) naming the first that is not."""
        settings_mod.check_volumes(settings, writable=writable)
        return cls(settings)

    @property
    def groups(self) -> int:
        return self.settings.store.mailbox_groups

    @cached_property
    def directory(self) -> Directory:
        return Directory(self.settings.directory_path)

    def lifetimes(self, account_id: str | None) -> Lifetimes:
        """An account's message lifetimes as the directory holds them now (`RetentionSource`)."""
        return self.directory.lifetimes(account_id)

    # -- the database -----------------------------------------------------------------------
    def connect(self, **kw: Any) -> Any:
        return self.db.connect(**kw)

    def ensure_schema(self) -> bool:
        """Create Zimbra's schema on an empty database; True if it was created."""
        conn = self.db.connect()
        try:
            s = self.settings
            return schema.create(conn, groups=s.store.mailbox_groups,
                                 blob_path=str(s.volumes.blob.path),
                                 index_path=str(s.volumes.index.path),
                                 compress_blobs=s.store.compress_blobs,
                                 compression_threshold=s.store.compression_threshold)
        finally:
            conn.close()

    @contextmanager
    def database(self, *, schema: bool = True) -> Iterator[MariaDB]:
        """MariaDB up for the block (with the schema, unless told not to): started if it was
        down, and then stopped again however the block ends."""
        started = False
        if not self.db.running():
            self.db.start()
            started = True
        try:
            if schema:
                self.ensure_schema()
            yield self.db
        finally:
            if started:
                self.db.stop()

    # -- the volumes lock -------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.settings.volumes.redolog.path / LOCK_NAME

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the volumes lock for the block; `StateConflict` (exit 5) naming the holder if
        another process has it."""
        path = self.lock_path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = path.read_text().strip() or "another process"
            raise StateConflict(f"the store volumes are in use by {holder}",
                                hint="stop that store first (`standby store stop`)") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
            self._lock_fd = fd
            yield
        finally:
            self._lock_fd = None
            os.close(fd)

    def locked(self) -> bool:
        """True if some process holds the volumes lock (this one included)."""
        if self._lock_fd is not None:
            return True
        return flock_held(self.lock_path)

    def service_pid(self) -> int | None:
        """The pid of the store service running on these volumes, if any."""
        try:
            pid = int((self.settings.state_dir / SERVICE_PID).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _process.alive(pid) else None

    def check_stopped(self, what: str = "this") -> None:
        """Refuse (exit 5) while a store service runs on, or holds, these volumes."""
        if self.service_pid() is not None or self.locked():
            raise StateConflict(f"Stop mailboxd before running {what}: the store service is "
                                "running on these volumes", hint="`standby store stop "
                                "--service-only` stops it and leaves MariaDB up")

    # -- the replay marker ------------------------------------------------------------------
    @property
    def marker_path(self) -> Path:
        return self.settings.state_dir / REPLAY_MARKER

    def replay_interrupted(self) -> bool:
        return self.marker_path.exists()

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Mark the volumes incomplete for the block; the mark stays if the block fails, so a
        store will not start on them until a replay finishes (it is idempotent)."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.marker_path.write_text(
            f"started {timefmt.iso_utc(timefmt.now_ms())} pid {os.getpid()}\n")
        yield
        self.marker_path.unlink(missing_ok=True)

    # -- end --------------------------------------------------------------------------------
    def close(self) -> None:
        self.index.close()
        if "directory" in self.__dict__:
            self.directory.close()
            del self.__dict__["directory"]

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
