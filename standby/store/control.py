"""Starting, stopping and inspecting the store's two processes (`standby store ...`).

`init DIR` writes `DIR/standby.toml` with embedded defaults: the four volumes as folders under DIR,
the `dir` snapshot backend, a private MariaDB, state under `DIR/state`. `start` starts the private
`mariadbd` (unless it is already up for these volumes) and then the store service, both in the
background, and waits until the service answers. `stop` stops the service, then MariaDB (unless
`service_only`, as Zimbra's offline restores need MariaDB up with mailboxd down).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from standby import _process
from standby import log as slog
from standby import settings as settings_mod
from standby.errors import (
    ConfigError,
    FormatError,
    IntegrityError,
    NotFound,
    ServiceError,
    StandbyError,
    StateConflict,
    UsageError,
    VolumeError,
)
from standby.fsutil import write_atomic
from standby.redolog import files
from standby.redolog import header as fileheader
from standby.settings import Settings, Volumes, VolumeSettings
from standby.store.client import StoreClient
from standby.store.site import Site


def init(directory: Path, *, server_id: str | None = None, mailbox_groups: int = 100,
         force: bool = False, manifest_key: str | None = None) -> Path:
    """Create a store folder with embedded defaults; return the config path."""
    directory = directory.resolve()
    cfg = directory / "standby.toml"
    if cfg.exists() and not force:
        raise StateConflict(f"{cfg} already exists", hint="use --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    for name in settings_mod.VOLUME_NAMES:
        (directory / name).mkdir(exist_ok=True)
    (directory / "state").mkdir(exist_ok=True)
    s = Settings(
        server_id=server_id or str(uuid.uuid4()),
        state_dir=Path("state"),
        volumes=Volumes(**{n: VolumeSettings(path=Path(n), backend="dir")
                           for n in settings_mod.VOLUME_NAMES}),
    )
    s = _with_groups(s, mailbox_groups)
    s = dataclasses.replace(s, snapshot=dataclasses.replace(
        s.snapshot, manifest_key=manifest_key or secrets.token_hex(32)))
    text = ("# standby configuration, written by `standby store init`.\n"
            "# Paths are relative to this file. See README.md for every key.\n"
            "# It holds the manifest signing key: keep it private (mode 0600).\n\n"
            + settings_mod.to_toml(s, include_secrets=True))
    write_atomic(cfg, text, mode=0o600)  # it holds the manifest key
    return cfg


def _with_groups(s: Settings, groups: int) -> Settings:
    return dataclasses.replace(s, store=dataclasses.replace(s.store, mailbox_groups=groups))


@dataclass(frozen=True)
class Status:
    mariadb_pid: int | None
    service_pid: int | None
    service_answering: bool
    redo_seq: int | None
    redo_size: int | None
    archived_logs: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def service_pid(s: Settings) -> int | None:
    return Site(s).service_pid()


def start(s: Settings, *, timeout: float = 120.0) -> Status:
    log = slog.get("standby.store.control")
    site = Site.open(s)
    s.state_dir.mkdir(parents=True, exist_ok=True)
    if site.service_pid() is not None or site.locked():
        raise StateConflict("the store is already running on these volumes",
                            hint="`standby store status` shows it; `standby store stop` stops it")
    if site.replay_interrupted():
        raise StateConflict("a replay onto these volumes was interrupted; they are not "
                            "consistent yet", hint="run the replay again (it is idempotent), "
                            f"or remove {site.marker_path} to override")
    db = site.db
    if not db.running():
        db.start()
        db.mark_owner()
    site.ensure_schema()
    cmd = _process.Command((sys.executable, "-m", "standby.store.service",
                            "--config", str(s.source)))
    log_path = s.state_dir / "store.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    pid = _process.daemon(cmd, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process.alive(pid):
            raise _startup_failure(log_path, log_start) or ServiceError(
                "the store service exited during start-up: " + _tail(s),
                hint=f"see {log_path}")
        if s.store_socket.exists():
            try:
                with StoreClient(s.store_socket, timeout=5) as c:
                    c.call("ping")
                log.info("store_started", pid=pid, socket=str(s.store_socket))
                return status(s)
            except ServiceError:
                pass
        time.sleep(0.1)
    _process.terminate(pid, timeout=10)
    raise ServiceError(f"the store service did not answer within {timeout} s: " + _tail(s))


_ERRORS_BY_CODE: dict[int, type[StandbyError]] = {
    2: UsageError, 3: ConfigError, 4: VolumeError, 5: StateConflict, 6: FormatError,
    7: ServiceError, 8: IntegrityError, 9: NotFound,
}


def _startup_failure(log_path: Path, since: int) -> StandbyError | None:
    """The error the service reported before exiting (its `store_failed` line in this run's
    part of the log), re-raised here with its own exit code: a redo log of a newer version
    must fail `store start` with 6, not as a generic service failure."""
    try:
        with open(log_path, "rb") as f:
            f.seek(since)
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "store_failed":
            try:
                code = int(event.get("exit_code", 7))
            except (TypeError, ValueError):
                code = 7
            cls = _ERRORS_BY_CODE.get(code, ServiceError)
            return cls(f"the store service refused to start: {event.get('error', '')}",
                       hint=f"see {log_path}")
    return None


def _tail(s: Settings) -> str:
    try:
        lines = (s.state_dir / "store.log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no log"
    for line in reversed(lines):
        if '"error"' in line or "Error" in line or "Traceback" in line:
            return line[-400:]
    return lines[-1][-400:] if lines else "empty log"


def stop(s: Settings, *, service_only: bool = False, timeout: float = 120.0) -> dict[str, bool]:
    pid = service_pid(s)
    stopped_service = False
    if pid is not None:
        _process.terminate(pid, timeout=timeout)
        stopped_service = True
    stopped_db = False
    if not service_only:
        stopped_db = Site(s).db.stop(timeout=timeout)
    return {"service": stopped_service, "mariadb": stopped_db}


def kill(s: Settings) -> None:
    """SIGKILL both processes (crash tests, the failover drill)."""
    pid = service_pid(s)
    if pid is not None:
        _process.kill(pid)
    Site(s).db.kill()
    deadline = time.monotonic() + 10
    while pid is not None and _process.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def status(s: Settings) -> Status:
    """The processes and the redo log position; VolumeError (exit 4), as `start`, when a volume
    is missing: a status of volumes that are not there would only look like a stopped store."""
    settings_mod.check_volumes(s, writable=False)
    site = Site(s)
    db = site.db
    pid = site.service_pid()
    answering = False
    if pid is not None and s.store_socket.exists():
        try:
            with StoreClient(s.store_socket, timeout=5) as c:
                c.call("ping")
                answering = True
        except ServiceError:
            answering = False
    seq = size = None
    current = s.volumes.redolog.path / files.CURRENT
    if current.exists():
        try:
            with open(current, "rb") as f:
                hdr = fileheader.decode(f.read(fileheader.HEADER_SIZE), path=str(current))
            seq, size = hdr.sequence, current.stat().st_size
        except (OSError, FormatError):
            seq = size = None
    archived = len(files.list_archive(s.volumes.redolog.path / files.ARCHIVE_DIR))
    return Status(db.pid(), pid, answering, seq, size, archived)
