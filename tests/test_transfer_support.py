"""Shared pieces of the shipping tests (no tests here): a *rig* is a primary and a standby whose
volumes are on one backend, and a target of one kind between them, all real and torn down by
their own ids:

- `file`: dir volumes (folders), a `file://` folder;
- `s3`: dir volumes, a bucket of its own in the session's `moto_server`, over HTTP;
- `zfs`: zfs volumes (datasets on one zfs-fuse pool), a `zfs://` target and the standby's
  datasets on a second pool; `zfs-ssh`: the same target reached over ssh (an `sshd` on
  127.0.0.1 with throwaway keys); `zfs-s3`: zfs volumes shipped to a bucket as their send
  streams and received into the standby's datasets;
- `btrfs`: subvolumes on one loop-mounted btrfs, the target and the standby on another.

The pools and btrfs mounts are the module's (`Pools`); each rig makes its own datasets and
subvolumes in them under a name of its own.

The primary's volumes hold files the test writes itself (no store runs), so what each snapshot
holds is known exactly: `Rig.take` records it, `Rig.expect` says it, `tree` reads a folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from standby import log as slog
from standby import settings as settings_mod
from standby.catalog.manifest import Manifest
from standby.settings import Settings
from standby.snapshot import sets
from standby.transfer import factory
from standby.transfer._base import Target
from standby.transfer.file import DirStore
from standby.transfer.s3 import S3Store
from standby.transfer.pull import STAGING
from tests import services
from tests.test_snapshot_cli import run as snapshot_cli
from tests.test_snapshot_support import KEY, VOLS, site_config

RUNTIME = {".standby-snapshot", ".standby-store.lock", STAGING}
ENC_KEY = "ab" * 32


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes), folder ("d") and symlink ("-> target") under `root`, leaving
    out the runtime files that never travel."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        base = "" if rel == "." else rel + "/"
        dirs[:] = [d for d in dirs if not (base == "" and d in RUNTIME)]
        for d in dirs:
            out[base + d] = "d"
        for f in files:
            if base == "" and f in RUNTIME:
                continue
            p = Path(dirpath) / f
            out[base + f] = f"-> {os.readlink(p)}" if p.is_symlink() else p.read_bytes()
    return out


OBJECT_KINDS = ("file", "s3", "zfs-s3")


@dataclass
class Pools:
    """Two zfs-fuse pools (mounted under `root`) or two btrfs loop mounts, for one module."""

    zfs: tuple[str, str] | None = None
    btrfs: tuple[Path, Path] | None = None
    root: Path = Path("/")
    sshd: Any = None


@dataclass
class Rig:
    kind: str
    root: Path
    primary: Settings
    standby: Settings
    url: str
    s3: Any = None  # a boto3 client, to look at and tamper with the bucket
    bucket: str = ""
    expected: dict[str, dict[str, dict[str, bytes | str]]] = field(default_factory=dict)

    @property
    def objects(self) -> bool:
        """True for a target that holds objects (s3, file), False for a receiving one."""
        return self.kind in OBJECT_KINDS

    def path(self, vol: str) -> Path:
        return getattr(self.primary.volumes, vol).path

    def write(self, vol: str, rel: str, data: bytes) -> None:
        p = self.path(vol) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def remove(self, vol: str, rel: str) -> None:
        (self.path(vol) / rel).unlink()

    def take(self, kind: str = "set") -> Manifest:
        m = sets.take(kind, self.primary).manifest
        self.expected[m.id] = {s.volume: tree(self.path(s.volume)) for s in m.snapshots}
        return m

    def expect(self, m: Manifest, vol: str) -> dict[str, bytes | str]:
        return self.expected[m.id][vol]

    def target(self, side: str = "primary") -> Target:
        return factory.open_target(self.url, self.primary if side == "primary" else
                                   self.standby)

    def standby_tree(self, vol: str) -> dict[str, bytes | str]:
        return tree(getattr(self.standby.volumes, vol).path)

    def with_target(self, **kw: Any) -> None:
        """Change `[target]` on both sides (as both config files would)."""
        keys = {f"target.{k}": v for k, v in kw.items()}
        self.primary = settings_mod.with_overrides(self.primary, keys)
        self.standby = settings_mod.with_overrides(self.standby, keys)

    # -- tampering at the target ------------------------------------------------------------
    def keys(self) -> dict[str, int]:
        return self.target().catalog.store.list("")

    def read_object(self, key: str) -> bytes:
        return self.target().catalog.store.get(key)

    def replace_object(self, key: str, data: bytes) -> None:
        """Overwrite an object at the target behind standby's back."""
        store = self.target().catalog.store
        if isinstance(store, S3Store):
            self.s3.put_object(Bucket=self.bucket, Key=store.root + key, Body=data)
        else:
            assert isinstance(store, DirStore)
            (store.root / key).write_bytes(data)

    def delete_object(self, key: str) -> None:
        self.target().catalog.store.delete(key)

    def lose(self, vol: str, mid: str) -> None:
        """Lose a snapshot's data at the target, its record left (a disk error, a hand)."""
        t = self.target()
        rec = t.catalog.record(vol, mid)
        if self.objects:
            obj = rec.object("stream")
            assert obj is not None
            self.delete_object(obj.key)
        else:
            t.discard(rec)


def make_rig(kind: str, root: Path, request: pytest.FixtureRequest, *,
             encrypt: bool = False, sections: dict[str, dict[str, object]] | None = None,
             pools: Pools | None = None) -> Rig:
    sid = str(uuid.uuid4())
    target: dict[str, object] = {"encryption_key": ENC_KEY} if encrypt else {}
    extra: dict[str, Any] = {}
    if kind in ("s3", "zfs-s3"):
        moto = request.getfixturevalue("moto")
        aws_env(request.getfixturevalue("monkeypatch"))
        import boto3

        bucket = f"sb-{uuid.uuid4().hex[:12]}"
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/standby"
        target.update(endpoint_url=moto.url, region="us-east-1", part_size_mb=5,
                      retries=2)
        extra = {"s3": s3, "bucket": bucket}
    elif kind == "file":
        (root / "target").mkdir(parents=True)
        url = f"file://{root / 'target'}"
    name = f"r{uuid.uuid4().hex[:6]}"
    pvols: dict[str, tuple[Path, str, str | None]]
    svols: dict[str, tuple[Path, str, str | None]]
    if kind in ("zfs", "zfs-ssh", "zfs-s3"):
        assert pools is not None and pools.zfs is not None
        a, b = pools.zfs
        pvols, svols = _zfs_volumes(root, a, b, name)
        if kind == "zfs":
            url = f"zfs://{b}/{name}-target"
        elif kind == "zfs-ssh":
            sshd = pools.sshd
            url = f"zfs://root@127.0.0.1:{sshd.port}/{b}/{name}-target"
            target.update(ssh_identity=str(sshd.identity), ssh_options=sshd.ssh_options)
    elif kind == "btrfs":
        assert pools is not None and pools.btrfs is not None
        pvols, svols = _btrfs_volumes(*pools.btrfs, name)
        url = f"btrfs://{pools.btrfs[1] / name / 'target'}"
    elif kind in ("file", "s3"):
        pvols = {v: (root / "primary" / v, "dir", None) for v in VOLS}
        svols = {v: (root / "standby" / v, "dir", None) for v in VOLS}
    else:
        raise AssertionError(f"no rig of kind {kind}")
    secs = {"snapshot": {"stagger_s": 0.0, "use_pyzfs": False}, "target": target,
            **(sections or {})}
    if sections and "target" in sections:
        secs["target"] = {**target, **sections["target"]}
    p = settings_mod.load(site_config(root / "primary", pvols, sections=secs, server_id=sid))
    sb = settings_mod.load(site_config(root / "standby", svols, sections=secs, server_id=sid))
    return Rig(kind, root, p, sb, url, **extra)


def _zfs_volumes(root: Path, a: str, b: str, name: str
                 ) -> tuple[dict[str, tuple[Path, str, str | None]],
                            dict[str, tuple[Path, str, str | None]]]:
    """The primary's volumes as datasets `a/<name>/<volume>`; the standby's to be received as
    `b/<name>-sb/<volume>`, mounted (by inheritance) where its config says."""
    prim, sb = root / "pvol", root / "svol"
    services._run("zfs", "create", "-o", f"mountpoint={prim}", f"{a}/{name}")
    services._run("zfs", "create", "-o", f"mountpoint={sb}", f"{b}/{name}-sb")
    pvols: dict[str, tuple[Path, str, str | None]] = {}
    svols: dict[str, tuple[Path, str, str | None]] = {}
    for v in VOLS:
        services._run("zfs", "create", f"{a}/{name}/{v}")
        pvols[v] = (prim / v, "zfs", f"{a}/{name}/{v}")
        svols[v] = (sb / v, "zfs", f"{b}/{name}-sb/{v}")  # made by the first pull
    return pvols, svols


def _btrfs_volumes(a: Path, b: Path, name: str
                   ) -> tuple[dict[str, tuple[Path, str, str | None]],
                              dict[str, tuple[Path, str, str | None]]]:
    pvols: dict[str, tuple[Path, str, str | None]] = {}
    svols: dict[str, tuple[Path, str, str | None]] = {}
    for base, out in ((a, pvols), (b, svols)):
        (base / name).mkdir()
        for v in VOLS:
            services._run("btrfs", "subvolume", "create", str(base / name / v))
            out[v] = (base / name / v, "btrfs", None)
    return pvols, svols


def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for moto in the environment, for this test (botocore reads them; standby
    never does)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`standby ARGS` through the CLI's edge: (exit code, stdout, stderr)."""
    try:
        return snapshot_cli(args, capsys)
    finally:
        # The root command logs to pytest's capture, closed after the test.
        slog.configure("json", "info", stream=sys.__stderr__)


def config_of(s: Settings) -> str:
    assert s.source is not None
    return str(s.source)


def fill(rig: Rig, seed: int = 0) -> None:
    """Volumes with a little of everything: a database file, blobs, an index, redo logs."""
    rng = __import__("random").Random(seed)
    rig.write("db", "data/ibdata1", rng.randbytes(300_000))
    rig.write("db", "data/zimbra/mail_item.ibd", bytes(200_000))
    for i in range(30):
        rig.write("blob", f"0/{i % 3}/msg/{i}-1.msg", b"Subject: hi\r\n\r\n" + rng.randbytes(
            rng.randrange(100, 5000)))
    rig.write("index", "0/1/index/1.sqlite", rng.randbytes(50_000))
    rig.write("redolog", "logs/redo.bin", rng.randbytes(4096))
    os.symlink("logs/redo.bin", rig.path("redolog") / "current")
    (rig.path("blob") / "incoming").mkdir()


def rmtree(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)


def identity(r: Rig, m: Manifest, vol: str) -> str:
    """The stream identity of the primary's snapshot: its zfs guid or btrfs uuid."""
    rec = m.snapshot(vol)
    assert rec is not None
    return str(rec.identity.get("guid") or rec.identity.get("uuid"))


def _standby_backend(r: Rig) -> Any:
    from standby.snapshot import factory as backends_factory

    return backends_factory.backend(r.standby.volumes.db.backend, r.standby)


def standby_stream_ids(r: Rig, vol: str) -> set[str]:
    """The stream ids of the snapshots the standby's `vol` volume received."""
    from standby.transfer.landing import landing_target

    v = getattr(r.standby.volumes, vol)
    be = _standby_backend(r)
    from standby.snapshot._base import Volume

    t = landing_target(Volume(vol, v.path, v.dataset), r.standby.volumes.db.backend)
    return {x.stream_id for x in be.received(t)}


def destroy_standby_datasets(r: Rig) -> None:
    """What the operator is told to do before pulling an older set into zfs datasets."""
    import time

    for _name, v in r.standby.volumes.items():
        for _ in range(40):  # zfs-fuse answers "busy" for a moment after a dataset was used
            res = services._run("zfs", "destroy", "-r", str(v.dataset), check=False)
            if res.returncode == 0:
                break
            time.sleep(0.25)
        else:
            raise AssertionError(f"cannot destroy {v.dataset}: {res.stderr!r}")


Setup = Callable[..., Rig]


def rig_fixture(kinds: list[str]) -> Callable[..., Iterator[Setup]]:
    """A fixture factory: `rig(encrypt=False, sections=None)` for each of `kinds`, using the
    module's `pools` fixture for the zfs and btrfs kinds."""

    @pytest.fixture(params=kinds)
    def _rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
        made: list[Rig] = []
        kind = request.param
        pools = None
        if kind.startswith("zfs") or kind == "btrfs":
            pools = request.getfixturevalue("btrfs_pools" if kind == "btrfs" else "zfs_pools")
            if kind == "zfs-ssh":
                pools = Pools(zfs=pools.zfs, root=pools.root,
                              sshd=request.getfixturevalue("sshd"))

        def make(**kw: Any) -> Rig:
            r = make_rig(kind, tmp_path / f"r{len(made)}", request, pools=pools, **kw)
            made.append(r)
            return r

        yield make

    return _rig


@contextmanager
def zfs_pools(root: Path) -> Iterator[Pools]:
    ok, why = services.ZfsFuse(root).available()
    services.require("ZFS (zfs-fuse)", ok, why)
    z = services.ZfsFuse(root)
    z.ensure_daemon()
    made = []
    try:
        # 2 GB each (sparse files): a drill's primary and standby, with their MariaDB data
        # and the blocks its snapshots hold, came within a few MB of filling 1 GB (ENOSPC).
        for _ in range(2):
            made.append(z.create_pool(f"sbx{uuid.uuid4().hex[:8]}", size="2G"))
        yield Pools(zfs=(made[0][0], made[1][0]), root=root)
    finally:
        for name, img in made:
            z.destroy_pool(name, img)


@contextmanager
def btrfs_pools(root: Path) -> Iterator[Pools]:
    ok, why = services.BtrfsLoop.available()
    services.require("btrfs", ok, why)
    with services.BtrfsLoop(root, size="1G") as a, services.BtrfsLoop(root, size="1G") as b:
        yield Pools(btrfs=(a, b), root=root)


@contextmanager
def sshd_at(root: Path) -> Iterator[Any]:
    ok, why = services.Sshd.available()
    services.require("sshd", ok, why)
    with services.Sshd(root) as s:
        yield s


__all__ = ["KEY", "Rig", "cli", "config_of", "fill", "make_rig", "rig_fixture", "tree"]
