"""What a backup or restore works with, passed in: the site's volumes, the target, the resolved
configuration, the clock, and the effects on the running store and the outside world.

`Env` is built once at the CLI's composition root (`cli/classic.py`); the library never opens a
socket, reads the environment or the clock by itself, so tests give it an injected clock, a
recording mailer or no running store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from standby import log as slog
from standby.classic.attrs import BackupConfig
from standby.classic.target import Target
from standby.settings import Settings
from standby.store.blobs import BlobStore
from standby.store.directory import Directory
from standby.store.index import IndexStore


class SiteLike(Protocol):
    """The parts of a store `Site` the classic module uses."""

    settings: Settings
    blobs: BlobStore
    index: IndexStore

    @property
    def directory(self) -> Directory: ...

    @property
    def groups(self) -> int: ...

    def connect(self, **kw: Any) -> Any: ...


class Mailer(Protocol):
    def send(self, *, sender: str, recipients: tuple[str, ...], subject: str,
             body: str) -> None: ...


@dataclass
class Env:
    site: SiteLike
    target: Target
    config: BackupConfig
    local: Mapping[str, str]  # localconfig keys, defaults filled in
    server: str  # this server's name (zimbra_server_hostname)
    now_ms: Callable[[], int]
    # Ask the running store to roll its redo log over (None when no store runs).
    rollover: Callable[[], object] | None = None
    mailer: Mailer | None = None
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
