"""Shared fixtures: real MariaDB-backed stores, ZFS pools, btrfs mounts, an S3/EC2 endpoint.

Every fixture cleans up what it started, by its own ids. With STANDBY_REQUIRE_SERVICES=1 (CI) a
missing service is a failure, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from standby import settings as settings_mod
from standby.settings import Settings
from standby.store import control
from tests import services
from tests.services import BtrfsLoop, MotoServer, ZfsFuse, require, write_config


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TZ", "UTC")


@pytest.fixture(scope="session")
def mariadb_available() -> None:
    require("MariaDB", services.have("mariadbd") and services.have("mariadb-install-db"),
            "mariadbd / mariadb-install-db not installed (apt-get install mariadb-server)")


class StoreHandle:
    """A store in a temporary folder; `start()`/`stop()`/`kill()` its processes."""

    def __init__(self, root: Path, cfg: Path) -> None:
        self.root = root
        self.cfg = cfg
        self.settings: Settings = settings_mod.load(cfg)

    def reload(self) -> Settings:
        self.settings = settings_mod.load(self.cfg)
        return self.settings

    def start(self) -> control.Status:
        return control.start(self.settings)

    def stop(self, **kw: bool) -> None:
        control.stop(self.settings, **kw)

    def kill(self) -> None:
        control.kill(self.settings)

    def client(self):  # type: ignore[no-untyped-def]
        from standby.store.client import StoreClient

        return StoreClient(self.settings.store_socket)


@pytest.fixture
def make_store(tmp_path: Path, mariadb_available: None) -> Iterator:
    """Factory: make_store(name="primary", volumes=None, **write_config kwargs) -> StoreHandle."""
    made: list[StoreHandle] = []

    def make(name: str = "primary", **kw: object) -> StoreHandle:
        root = tmp_path / name
        cfg = write_config(root, **kw)  # type: ignore[arg-type]
        h = StoreHandle(root, cfg)
        made.append(h)
        return h

    yield make
    for h in made:
        try:
            control.stop(h.settings, timeout=30)
        except Exception:  # noqa: BLE001 - clean-up must go on for the other stores
            control.kill(h.settings)


@pytest.fixture
def store(make_store) -> Iterator[StoreHandle]:  # type: ignore[no-untyped-def]
    h = make_store()
    h.start()
    yield h


@pytest.fixture(scope="session")
def zfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZfsFuse]:
    z = ZfsFuse(tmp_path_factory.mktemp("zfs"))
    ok, why = z.available()
    require("ZFS (zfs-fuse)", ok, why)
    z.ensure_daemon()
    yield z
    z.stop()


def _pool(zfs: ZfsFuse) -> Iterator[str]:
    name = f"sbt{uuid.uuid4().hex[:8]}"
    pool, img = zfs.create_pool(name)
    yield pool
    zfs.destroy_pool(pool, img)


@pytest.fixture
def zpool(zfs: ZfsFuse) -> Iterator[str]:
    yield from _pool(zfs)


@pytest.fixture
def zpool_b(zfs: ZfsFuse) -> Iterator[str]:
    """A second pool beside `zpool`: the receiving side of send/receive tests."""
    yield from _pool(zfs)


def _btrfs(tmp_path: Path) -> Iterator[Path]:
    ok, why = BtrfsLoop.available()
    require("btrfs", ok, why)
    with BtrfsLoop(tmp_path) as mnt:
        yield mnt


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    yield from _btrfs(tmp_path)


@pytest.fixture
def btrfs_b(tmp_path: Path) -> Iterator[Path]:
    """A second btrfs file system (its own loop device) beside `btrfs`."""
    yield from _btrfs(tmp_path)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    ok, why = MotoServer.available()
    require("moto_server", ok, why)
    with MotoServer() as m:
        yield m
