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
from standby.classic import remote as remote_mod
from standby.classic.attrs import BackupConfig
from standby.classic.remote import Remote
from standby.classic.report import SmtpMailer
from standby.classic.target import Target
from standby.errors import UsageError
from standby.settings import Settings
from standby.store.client import StoreClient
from standby.store.site import Site
from standby.transfer import factory
from standby.transfer._base import ObjectStore, TargetUrl


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
    workers: int = 2  # accounts backed up or restored at a time, each in a worker process
    # The object store behind `target` when -t is an s3:// URL (`target` is then its local copy).
    remote: Remote | None = None
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


def build(site: Site, *, target: Path | str | None = None, server: str | None = None,
          now_ms: Callable[[], int] = timefmt.now_ms, mailer: Mailer | None = None,
          hostname: Callable[[], str] = socket.gethostname,
          s3: Callable[[], Any] | None = None) -> Env:
    """The `Env` for a site: its attributes and localconfig resolved, the target chosen (-t,
    else zimbraBackupTarget, else `<state_dir>/backup`: a folder, file:///path, or an
    s3:// URL kept through its local copy), the running store's rollover and the SMTP mailer
    wired in. `s3`: the S3 client factory (tests; default from the `[target]` settings)."""
    s = site.settings
    local = localconfig.effective(localconfig.load(s.state_dir), hostname=hostname())
    name = local["zimbra_server_hostname"] or hostname()
    if server is not None and server not in (name, "localhost"):
        raise UsageError(f"-s {server}: this is server {name}; backups and restores run on "
                         "the server they are for", hint=f"leave out -s, or give -s {name}")
    d = site.directory
    cfg = attrs.backup_config(d.attrs(attrs.GLOBAL), d.attrs(attrs.server_scope(name)))
    where = target if target is not None else (cfg.target or s.state_dir / "backup")
    root, remote = _target(where, s, now_ms, s3)

    def rollover() -> object:
        if site.service_pid() is None:
            return False
        with StoreClient(s.store_socket) as c:
            return c.call("rollover")

    t = Target(root)
    env = Env(site=site, target=t, config=cfg, local=local, server=name, now_ms=now_ms,
              rollover=rollover, mailer=mailer or SmtpMailer(cfg.smtp_host, cfg.smtp_port))
    if remote is not None:
        url, store = remote
        env.remote = Remote(url, store, t, level=s.target.compression_level,
                            key=factory.encryption_key(s), now_ms=now_ms)
    return env


def _target(where: Path | str, s: Settings, now_ms: Callable[[], int],
            s3: Callable[[], Any] | None) -> tuple[Path, tuple[TargetUrl, ObjectStore] | None]:
    """(folder of the target or of its local copy, the URL and store behind it if remote)."""
    text = str(where)
    if "://" not in text:
        return Path(text).absolute(), None
    u = factory.target_url(text, s)
    if u.scheme == "file":
        return Path(u.path), None
    if u.scheme != "s3":
        raise UsageError(f"-t {u}: a backup target is a folder, file:///path or "
                         "s3://bucket/prefix; zfs and btrfs targets receive snapshots",
                         hint="back up to a folder or a bucket, and ship snapshots with "
                         "`standby ship`")
    return remote_mod.cache_dir(s.state_dir, u), (u, factory.object_store(u, s, s3=s3))
