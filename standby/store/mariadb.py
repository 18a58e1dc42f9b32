"""The store's private MariaDB server on the `db` volume, as Zimbra runs its own `mysqld`.

The data directory is `<db volume>/data`; the socket, pid file and error log live in the state
directory, never on the volume (a snapshot must not capture a socket). The server runs with
`--skip-networking`, `--no-defaults` (nothing from the host's my.cnf) and, as Zimbra does,
`innodb_flush_log_at_trx_commit=0`: the redo log, not InnoDB, is the durability point.

`MariaDB` builds the commands (`install_command`, `server_command`) apart from running them so
tests can check argv; `start`/`stop` run them through `standby._process`.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from standby import _process
from standby import log as slog
from standby.errors import ConfigError, ServiceError, StateConflict
from standby.settings import MariaDBSettings

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


@dataclass(frozen=True)
class MariaDB:
    volume: Path  # the db volume; the data directory is volume/data
    socket: Path
    run_dir: Path  # pid file and error log
    settings: MariaDBSettings = MariaDBSettings()
    read_only: bool = False

    @property
    def datadir(self) -> Path:
        return self.volume / "data"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / (self.socket.stem + ".pid")

    @property
    def error_log(self) -> Path:
        return self.run_dir / (self.socket.stem + ".err")

    @property
    def tmpdir(self) -> Path:
        """A private temporary directory. Not the shared /tmp: a mariadbd starting up deletes
        every `#sql*` file in its tmpdir, including those of other servers still using them
        (seen as "Could not remove temporary table" failures of mariadb-install-db)."""
        return self.run_dir / (self.socket.stem + ".tmp")

    # -- commands ---------------------------------------------------------------------------
    @property
    def partial_datadir(self) -> Path:
        """Where a new data directory is installed before it is renamed into place."""
        return self.volume / "data.partial"

    def install_command(self) -> _process.Command:
        return _process.Command.of(
            self.settings.install_db,
            "--no-defaults",
            f"--datadir={self.partial_datadir}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            f"--tmpdir={self.tmpdir}",
            timeout=300,
        )

    def server_command(self) -> _process.Command:
        s = self.settings
        argv = [
            s.mariadbd,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self.tmpdir}",
            "--skip-networking",
            "--skip-name-resolve",
            "--user=root",
            f"--innodb-flush-log-at-trx-commit={s.flush_log_at_trx_commit}",
            f"--innodb-buffer-pool-size={s.buffer_pool}",
            f"--innodb-log-file-size={s.log_file_size}",
            f"--innodb-flush-method={s.flush_method}",
            f"--innodb-use-native-aio={1 if s.native_aio else 0}",
            "--local-infile=1",
            "--max-allowed-packet=256M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
            "--skip-log-bin",
            "--performance-schema=0",
            "--max-connections=500",
        ]
        if self.read_only:
            argv.append("--read-only")
        argv.extend(s.extra_args)
        return _process.Command(tuple(argv))

    # -- lifecycle --------------------------------------------------------------------------
    def installed(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    def install(self) -> None:
        """Create the system tables in a data directory beside the real one and rename it into
        place when complete, so an install cut off half way (a kill, a full disk) is never
        mistaken for a data directory: the next start installs again."""
        log = slog.get("standby.store.mariadb", datadir=str(self.datadir))
        if self.datadir.exists() and any(self.datadir.iterdir()):
            raise StateConflict(f"{self.datadir} holds files but no MariaDB system tables",
                                hint="move them away; standby installs a new data directory "
                                     "only into an empty or missing folder")
        partial = self.partial_datadir
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        log.info("mariadb_install")
        _process.run(self.install_command())
        if self.datadir.exists():
            self.datadir.rmdir()
        partial.rename(self.datadir)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _process.alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self) -> int:
        """Start detached and wait until it accepts connections; return its pid."""
        log = slog.get("standby.store.mariadb", datadir=str(self.datadir))
        if self.running():
            raise StateConflict(f"a MariaDB server is already running for {self.datadir} "
                                f"(pid {self.pid()})", hint="stop it first with `standby store stop`")
        if len(os.fsencode(self.socket)) > SOCKET_PATH_MAX:
            raise ConfigError(f"the MariaDB socket path {self.socket} is "
                              f"{len(os.fsencode(self.socket))} bytes, longer than the "
                              f"{SOCKET_PATH_MAX} a Unix socket allows",
                              hint="set mariadb.socket, or use a shorter state_dir")
        self._check_datadir_free()
        if not self.installed():
            self.install()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(exist_ok=True)
        for stale in (self.socket, self.pid_file):
            stale.unlink(missing_ok=True)
        pid = _process.daemon(self.server_command(), log_path=self.run_dir / "mariadbd.out")
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if not _process.alive(pid):
                raise ServiceError(f"mariadbd exited during start-up: {self._last_error()}",
                                   hint=f"see {self.error_log}")
            if self.socket.exists():
                try:
                    self.connect().close()
                    log.info("mariadb_started", pid=pid, socket=str(self.socket))
                    return pid
                except ServiceError:  # connect's translation: the socket is not accepting yet
                    pass
            time.sleep(0.1)
        _process.terminate(pid, timeout=5)
        raise ServiceError(f"mariadbd did not accept connections within "
                           f"{self.settings.start_timeout_s} s: {self._last_error()}")

    def _check_datadir_free(self) -> None:
        """Refuse if another mariadbd (from another config) holds this data directory."""
        stamp = self.datadir / "standby-owner.pid"
        try:
            other = int(stamp.read_text().strip())
        except (FileNotFoundError, ValueError):
            other = 0
        # Only a live mariadbd that runs on *this* directory counts: a snapshot or copy of the
        # volume carries the primary's stamp, which must not block a server on the copy.
        cmdline = _cmdline(other) if other and other != os.getpid() else ""
        if "mariadbd" in cmdline and f"--datadir={self.datadir}" in cmdline and \
                _process.alive(other):
            raise StateConflict(f"the data directory {self.datadir} is in use by mariadbd "
                                f"pid {other}", hint="stop the store that uses it first")

    def mark_owner(self) -> None:
        pid = self.pid()
        if pid:
            (self.datadir / "standby-owner.pid").write_text(f"{pid}\n")

    def stop(self, *, timeout: float = 120.0) -> bool:
        """Clean shutdown; True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        slog.get("standby.store.mariadb").info("mariadb_stopping", pid=pid)
        _process.terminate(pid, timeout=timeout)
        (self.datadir / "standby-owner.pid").unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        pid = self.pid()
        if pid:
            _process.kill(pid)
            deadline = time.monotonic() + 10
            while _process.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)

    def _last_error(self) -> str:
        try:
            lines = self.error_log.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "no error log"
        # The last error that says why, not the "Aborting" that always follows it.
        errs = ([ln for ln in lines if "ERROR" in ln and "Aborting" not in ln]
                or [ln for ln in lines if "ERROR" in ln] or lines)
        return errs[-1] if errs else "empty error log"

    # -- connections ------------------------------------------------------------------------
    def connect(self, db: str | None = None, *, autocommit: bool = False,
                dict_cursor: bool = False) -> pymysql.connections.Connection[Any]:
        try:
            return pymysql.connect(
                unix_socket=str(self.socket),
                user="root",
                database=db,
                autocommit=autocommit,
                charset="utf8mb4",
                local_infile=True,
                cursorclass=pymysql.cursors.DictCursor if dict_cursor else pymysql.cursors.Cursor,
                connect_timeout=10,
                # A Unix socket needs no TLS; without this pymysql 2.2 builds an SSL context
                # (loading the system's CA store) for every connection, ~150 ms each.
                ssl_disabled=True,
            )
        except pymysql.err.OperationalError as e:
            raise ServiceError(f"cannot connect to MariaDB at {self.socket}: {e.args[-1]}",
                               hint="is the store started? (`standby store start`)") from e


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
