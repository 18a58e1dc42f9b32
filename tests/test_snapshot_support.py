"""Shared pieces of the snapshot tests (no tests here): sites with the four volumes on a real
backend and a real store running on them, a config writer that sets backends and datasets, and
reading which ops a snapshot's volumes lack.

A *site* is a store folder whose volumes live on one backend: ZFS datasets on a zfs-fuse pool,
btrfs subvolumes on a loop device, plain folders (EBS: plain folders named by EBS volumes in
moto_server), plus the backend objects to use. Everything is torn down by its own ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby import settings as settings_mod
from standby.redolog import files
from standby.redolog.ops import AbortTxn, CommitTxn
from standby.redolog.reader import scan
from standby.settings import Settings
from standby.snapshot._base import SnapshotBackend
from tests import services
from tests.services import _toml

KEY = "test-manifest-key-0123456789"
VOLS = ("db", "blob", "index", "redolog")


def site_config(root: Path, vols: Mapping[str, tuple[Path, str, str | None]], *,
                sections: Mapping[str, Mapping[str, object]] | None = None,
                server_id: str | None = None) -> Path:
    """Like tests.services.write_config, with each volume's backend and dataset."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    conf: dict[str, dict[str, object]] = {
        "mariadb": {"buffer_pool": "64M", "log_file_size": "48M"},
        "store": {"mailbox_groups": 4},
        "redolog": {"rollover_min_age_s": 0},
        "snapshot": {"manifest_key": KEY, "stagger_s": 0.05},
    }
    for sec, kv in (sections or {}).items():
        conf.setdefault(sec, {}).update(kv)
    lines = [f'server_id = "{server_id or uuid.uuid4()}"', f'state_dir = "{root / "state"}"']
    for name, (path, backend, dataset) in vols.items():
        path.mkdir(parents=True, exist_ok=True)
        lines += [f"[volumes.{name}]", f'path = "{path}"', f'backend = "{backend}"']
        if dataset:
            lines.append(f'dataset = "{dataset}"')
    for sec, kv in conf.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_toml(v)}" for k, v in kv.items()]
    cfg = root / "standby.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def load(cfg: Path) -> Settings:
    s = settings_mod.load(cfg)
    assert s is not None
    return s


def zfs_volumes(z: services.ZfsFuse, root: Path, *, extra_child: bool = True,
                size: str = "1G") -> tuple[str, Path, dict[str, tuple[Path, str, str | None]]]:
    """A pool with `pool/sb/{db,blob,index,redolog}` mounted at root/<name> (and, to exercise
    atomic snapshots on zfs-fuse, a non-volume child `pool/sb/other`)."""
    name = f"sbs{uuid.uuid4().hex[:8]}"
    pool, img = z.create_pool(name, size=size)
    services._run("zfs", "create", "-o", f"mountpoint={root / 'sb'}", f"{pool}/sb")
    vols: dict[str, tuple[Path, str, str | None]] = {}
    for v in VOLS:
        services._run("zfs", "create", "-o", f"mountpoint={root / v}", f"{pool}/sb/{v}")
        vols[v] = (root / v, "zfs", f"{pool}/sb/{v}")
    if extra_child:
        services._run("zfs", "create", "-o", f"mountpoint={root / 'other'}", f"{pool}/sb/other")
    return pool, img, vols


@dataclass
class Site:
    kind: str
    cfg: Path
    settings: Settings
    backends: dict[str, SnapshotBackend]
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Which ops a volume lacks


@dataclass(frozen=True)
class LoggedOp:
    seq: int
    offset: int
    txn: tuple[int, int]
    tstamp: int
    mailbox_id: int
    change_id: int
    name: str
    op: Any


def committed_ops(redolog_dir: Path) -> list[LoggedOp]:
    """Every committed op in the redo log (archive, then redo.log), in log order, with where
    its change record first appears."""
    paths = [lf.path for lf in files.list_archive(redolog_dir / files.ARCHIVE_DIR)]
    current = redolog_dir / files.CURRENT
    if current.exists():
        paths.append(current)
    first: dict[tuple[int, int], LoggedOp] = {}
    committed: set[tuple[int, int]] = set()
    for p in paths:
        with scan(p) as sc:
            seq = sc.header.sequence
            for rec in sc:
                if isinstance(rec.op, CommitTxn):
                    committed.add(rec.txn)
                elif isinstance(rec.op, AbortTxn):
                    continue
                elif rec.txn not in first:
                    first[rec.txn] = LoggedOp(seq, rec.offset, rec.txn, rec.tstamp,
                                              rec.mailbox_id, rec.change_id, rec.op.NAME, rec.op)
    return sorted((o for t, o in first.items() if t in committed),
                  key=lambda o: (o.seq, o.offset))


def first_lacking(ops: list[LoggedOp], lacks: Any) -> LoggedOp | None:
    for o in ops:
        if lacks(o):
            return o
    return None
