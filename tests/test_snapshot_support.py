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


def destroy_pool(pool: str, img: Path) -> None:
    """`zpool destroy`, retried: zfs-fuse calls a pool busy for a moment after the last process
    that used it (a MariaDB on it) has exited."""
    import time

    deadline = time.monotonic() + 30
    while True:
        res = services._run("zpool", "destroy", "-f", pool, check=False)
        if res.returncode == 0 or b"no such pool" in res.stderr:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"cannot destroy pool {pool}: {res.stderr.decode().strip()}")
        time.sleep(0.25)
    img.unlink(missing_ok=True)


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


# --------------------------------------------------------------------------------------------
# Bringing a set's snapshots up, and checking its replay start against what they lack


def db_checkpoints(clone: Path, run_dir: Path, groups: int) -> dict[int, int]:
    """Start MariaDB on a db-volume copy (InnoDB crash recovery), read each mailbox's applied
    change number, count items; stop it."""
    from standby.settings import MariaDBSettings
    from standby.store.mariadb import MariaDB

    # The snapshot names the primary's live mariadbd as the owner of the data directory.
    (clone / "data" / "standby-owner.pid").unlink(missing_ok=True)
    db = MariaDB(volume=clone, socket=run_dir / "m.sock", run_dir=run_dir,
                 settings=MariaDBSettings(buffer_pool="64M", log_file_size="48M"))
    db.start()
    try:
        conn = db.connect()
        cur = conn.cursor()
        cur.execute("SELECT id, change_checkpoint FROM zimbra.mailbox")
        ckpt = {int(m): int(c) for m, c in cur.fetchall()}
        rows = 0
        for g in range(1, groups + 1):
            cur.execute(f"SELECT count(*) FROM mboxgroup{g}.mail_item")
            rows += int(cur.fetchone()[0])
        conn.close()
    finally:
        db.stop()
    assert ckpt and rows > 0, "the db copy should hold the mailboxes written so far"
    return ckpt


def index_hwms(clone: Path, mailboxes: list[int]) -> dict[int, int]:
    """Open each mailbox index (SQLite WAL recovery), search it, read its applied change."""
    import sqlite3

    from standby.store.index import index_dir

    out = {}
    for m in mailboxes:
        p = index_dir(clone, m) / "index.sqlite"
        if not p.exists():
            continue
        db = sqlite3.connect(p)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'hwm'").fetchone()
            db.execute("SELECT count(*) FROM docs WHERE docs MATCH 'the OR and'").fetchone()
            out[m] = int(row[0]) if row else 0
        finally:
            db.close()
    return out


def redo_end(clone: Path) -> tuple[int, int]:
    """(sequence, end of the last good record) of a redolog-volume copy's redo.log."""
    with scan(clone / files.CURRENT) as sc:
        for _ in sc:
            pass
        return sc.header.sequence, sc.good_end


def assert_replay_start(m: Any, ops: list[LoggedOp], clone: Mapping[str, Path], *,
                        primary_blobs: Path, run_dir: Path, groups: int) -> None:
    """Bring up each volume copy of manifest `m` and check that its replay start is at or
    before the first op any of them lacks (by position, or the op was active there; and by
    time), and that every op before it is in every volume."""
    from standby.store.blobs import blob_relpath

    mailboxes = sorted({o.mailbox_id for o in ops if o.mailbox_id > 0})
    ckpt = db_checkpoints(clone["db"], run_dir, groups)
    hwm = index_hwms(clone["index"], mailboxes)
    end = redo_end(clone["redolog"])

    def blob_of(o: LoggedOp) -> str | None:
        if o.name == "CreateMessage":
            return blob_relpath(o.mailbox_id, o.op.msg_id, o.change_id)
        if o.name in ("CreateContact", "ModifyContact") and getattr(o.op, "data", None):
            return blob_relpath(o.mailbox_id, o.op.contact_id, o.change_id)
        return None

    def lacks_blob(o: LoggedOp) -> bool:
        rel = blob_of(o)
        return (rel is not None and (primary_blobs / rel).exists()
                and not (clone["blob"] / rel).exists())

    lacks = {
        "db": lambda o: o.mailbox_id > 0 and o.change_id > ckpt.get(o.mailbox_id, 0),
        "index": lambda o: o.mailbox_id > 0 and o.change_id > hwm.get(o.mailbox_id, 0),
        "blob": lacks_blob,
        "redolog": lambda o: (o.seq, o.offset) >= end,
    }
    firsts = {v: first_lacking(ops, f) for v, f in lacks.items()}
    assert any(firsts.values()), "the load should have gone on after the set"
    r = m.replay
    active = [list(t) for t in r.active_txns]
    for vol, o in firsts.items():
        if o is None:
            continue
        assert (o.seq, o.offset) >= (r.seq, r.offset) or list(o.txn) in active, (vol, o, r)
        assert o.tstamp >= r.from_time_ms, (vol, o, r)
    before = [o for o in ops if (o.seq, o.offset) < (r.seq, r.offset)
              and list(o.txn) not in active]
    assert before, "the set should come after some traffic"
    for vol, f in lacks.items():
        assert not [o for o in before if f(o)], vol
