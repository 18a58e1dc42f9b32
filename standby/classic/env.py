"""What a backup or restore works with, passed in: the site's volumes, the target, the resolved
configuration, the clock, and the effects on the running store and the outside world.

`Env` is built once at the CLI's composition root (`cli/classic.py`); the library never opens a
socket, reads the environment or the clock by itself, so tests give it an injected clock, a
recording mailer or no running store.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from standby import log as slog
from standby import timefmt
from standby.classic import attrs, localconfig
from standby.classic.attrs import BackupConfig
from standby.classic.report import SmtpMailer
from standby.classic.target import Target
from standby.errors import UsageError
from standby.settings import Settings
from standby.store.client import StoreClient
from standby.store.site import Site


class Mailer(Protocol):
    def send(self, *, sender: str, recipients: tuple[str, ...], subject: str,
             body: str) -> None: ...


@dataclass
class Env:
    site: Site
    target: Target
    config: BackupConfig
    local: Mapping[str, str]  # localconfig keys, defaults filled in
    server: str  # this server's name (zimbra_server_hostname)
    now_ms: Callable[[], int]
    # Ask the running store to roll its redo log over (None when no store runs).
    rollover: Callable[[], object] | None = None
    mailer: Mailer | None = None
    workers: int = 2  # accounts a full session backs up at a time (each waits on MariaDB and disks)
    log: Any = field(default_factory=lambda: slog.get("standby.classic"))

    @property
    def settings(self) -> Settings:
        return self.site.settings

    @property
    def redolog_dir(self) -> Path:
        return self.site.settings.volumes.redolog.path

    @property
    def keep_ms(self) -> int:
        return int(self.local.get("backup_archived_redolog_keep_time", "3600")) * 1000

    @property
    def mysql_retention(self) -> int:
        return int(self.local.get("mysql_backup_retention", "0"))


def build(site: Site, *, target: Path | None = None, server: str | None = None,
          now_ms: Callable[[], int] = timefmt.now_ms, mailer: Mailer | None = None,
          hostname: Callable[[], str] = socket.gethostname) -> Env:
    """The `Env` for a site: its attributes and localconfig resolved, the target chosen (-t,
    else zimbraBackupTarget, else `<state_dir>/backup`), the running store's rollover and the
    SMTP mailer wired in."""
    s = site.settings
    local = localconfig.effective(localconfig.load(s.state_dir), hostname=hostname())
    name = local["zimbra_server_hostname"] or hostname()
    if server is not None and server not in (name, "localhost"):
        raise UsageError(f"-s {server}: this is server {name}; backups and restores run on "
                         "the server they are for", hint=f"leave out -s, or give -s {name}")
    d = site.directory
    cfg = attrs.backup_config(d.attrs(attrs.GLOBAL), d.attrs(attrs.server_scope(name)))
    root = target or (Path(cfg.target) if cfg.target else s.state_dir / "backup")

    def rollover() -> object:
        if site.service_pid() is None:
            return False
        with StoreClient(s.store_socket) as c:
            return c.call("rollover")

    return Env(site=site, target=Target(root), config=cfg, local=local, server=name,
               now_ms=now_ms, rollover=rollover,
               mailer=mailer or SmtpMailer(cfg.smtp_host, cfg.smtp_port))
