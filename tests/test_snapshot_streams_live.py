"""Streams for real: `zfs send | zfs recv` between two zfs-fuse pools and `btrfs send | btrfs
receive` between two loop-mounted file systems, full and incremental, through the
`StreamingBackend` protocol and `_process.pipe` only (no argv is built here).

Each test checks what shipping will rely on: the received data equals the snapshot's, the
receiving side lists the copy with the sender's stream identity (zfs guid, btrfs received uuid),
an incremental whose parent is missing there is refused with a clear error, and an interrupted
receive leaves nothing that a later listing could take for complete.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import BinaryIO

import pytest

from standby import _process
from standby.errors import (
    CommandFailed,
    NotFound,
    ServiceError,
    StateConflict,
    UsageError,
    VolumeError,
)
from standby.snapshot._base import (
    Snapshot,
    StreamingBackend,
    StreamTarget,
    Volume,
    newest_common,
)
from standby.snapshot.btrfs import BtrfsBackend
from standby.snapshot.zfs import StreamCapabilities, ZfsBackend
from tests.test_snapshot_streams import cut


def tree_digest(root: Path) -> dict[str, str]:
    """Every regular file below `root` (relative path -> sha256); hidden snapshot dirs skipped."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write_files(root: Path, tag: str, *, big: int = 0) -> None:
    (root / "sub").mkdir(exist_ok=True)
    (root / f"{tag}.txt").write_text(f"file {tag}\n" * 100)
    (root / "sub" / "shared.txt").write_text(f"changed by {tag}\n")
    if big:
        (root / f"{tag}.bin").write_bytes(os.urandom(big))


def ship(be: StreamingBackend, snap: Snapshot, target: StreamTarget,
         parent: Snapshot | None = None, **kw: bool) -> _process.Piped:
    """One stream as shipping will run it; failures translated by the backend."""
    try:
        piped = _process.pipe(be.send(snap, parent), be.receive(target, **kw),
                              on_chunk=lambda b: None, timeout=300)
    except CommandFailed as e:
        raise be.stream_error(e, target) from e
    be.after_receive(target)
    return piped


# -- ZFS ----------------------------------------------------------------------------------------


def zfs_mountpoint(ds: str) -> Path:
    out = subprocess.run(["zfs", "get", "-Hp", "-o", "value", "mountpoint", ds], check=True,
                         capture_output=True, text=True).stdout.strip()
    return Path(out)


def test_zfs_send_receive_between_pools(zpool: str, zpool_b: str) -> None:
    be = ZfsBackend(use_lzc=False)
    assert isinstance(be, StreamingBackend)
    subprocess.run(["zfs", "create", f"{zpool}/db"], check=True)
    src = zfs_mountpoint(f"{zpool}/db")
    vol = Volume("db", src, f"{zpool}/db")

    want = {}  # nothing writes between a snapshot and this look: the live tree is its data
    write_files(src, "one", big=3 << 20)
    (s1,) = be.create([vol], "s1", labels={})
    want["s1"] = tree_digest(src)
    write_files(src, "two")
    (s2,) = be.create([vol], "s2", labels={})
    want["s2"] = tree_digest(src)
    write_files(src, "three")
    (s3,) = be.create([vol], "s3", labels={})
    want["s3"] = tree_digest(src)

    target = StreamTarget(f"{zpool_b}/standby/db")
    assert be.received(target) == []  # nothing there yet, not an error
    be.prepare_receive(target)
    be.prepare_receive(target)  # idempotent

    # Full.
    est = be.estimate(s1)
    piped = ship(be, s1, target)
    assert piped.nbytes and est is not None
    assert 0.7 * piped.nbytes <= est <= 1.3 * piped.nbytes, (est, piped.nbytes)
    got = be.received(target)
    assert [r.name for r in got] == ["s1"]
    assert got[0].stream_id == be.stream_id(s1) == s1.identity["guid"]
    assert got[0].ref == f"{zpool_b}/standby/db@s1"
    dst = zfs_mountpoint(f"{zpool_b}/standby/db")
    assert tree_digest(dst) == want["s1"]

    # Incremental from the newest snapshot both sides hold.
    parent = newest_common([s1], got, be.stream_id)
    assert parent == s1
    assert be.estimate(s2, parent) is None  # zfs-fuse cannot size an increment
    # Reading the standby's files above changed it (atime): the increment must roll back.
    with pytest.raises(StateConflict, match="changed since its newest snapshot"):
        ship(be, s2, target, parent)
    ship(be, s2, target, parent, rollback=True)
    got = be.received(target)
    assert [(r.name, r.stream_id) for r in got] == [("s1", be.stream_id(s1)),
                                                   ("s2", be.stream_id(s2))]
    assert tree_digest(dst) == want["s2"]

    (dst / "local-change").write_text("x")  # a change of its own is rolled back too
    with pytest.raises(StateConflict, match="changed since its newest snapshot"):
        ship(be, s3, target, s2)
    ship(be, s3, target, s2, rollback=True)
    assert [r.name for r in be.received(target)] == ["s1", "s2", "s3"]
    assert tree_digest(dst) == want["s3"]

    # An incremental whose parent is not the target's newest snapshot is refused clearly.
    with pytest.raises(NotFound, match="not the incremental's parent") as ei:
        ship(be, s3, target, s1)
    assert "full stream" in (ei.value.hint or "")
    write_files(src, "four")
    (s4,) = be.create([vol], "s4", labels={})
    write_files(src, "five")
    (s5,) = be.create([vol], "s5", labels={})  # s4, its parent, is nowhere at the target
    fresh = StreamTarget(f"{zpool_b}/standby/other")
    with pytest.raises(NotFound, match="does not hold the incremental's parent"):
        ship(be, s5, fresh, s4)
    assert be.received(fresh) == []
    with pytest.raises(NotFound, match="not the incremental's parent"):
        ship(be, s5, target, s4)
    got = be.received(target)
    assert [r.name for r in got] == ["s1", "s2", "s3"]

    # Retention at the target: the oldest goes, twice is not an error, the rest stay.
    be.destroy_received(target, got[0])
    be.destroy_received(target, got[0])
    assert [r.name for r in be.received(target)] == ["s2", "s3"]
    with pytest.raises(UsageError, match="is not a snapshot of"):
        be.destroy_received(fresh, got[1])


def test_zfs_fuse_capabilities_are_detected_and_refused(zpool: str, zpool_b: str) -> None:
    """What zfs-fuse (pool version 23) can do with streams, read from the tool itself."""
    be = ZfsBackend(use_lzc=False)
    target = StreamTarget(f"{zpool_b}/standby/db")
    assert be.stream_capabilities() == StreamCapabilities(send_token=False,
                                                          recv_resumable=False, estimate=False)
    assert not be.can_resume(target)
    assert be.resume_token(target) is None
    with pytest.raises(ServiceError, match="cannot keep a partial receive"):
        be.receive(target, resumable=True)
    with pytest.raises(ServiceError, match="cannot resume a stream"):
        be.resume_send("1-abc-def")


def test_zfs_interrupted_receive_leaves_nothing_and_restarts(zpool: str, zpool_b: str) -> None:
    be = ZfsBackend(use_lzc=False)
    subprocess.run(["zfs", "create", f"{zpool}/blob"], check=True)
    src = zfs_mountpoint(f"{zpool}/blob")
    vol = Volume("blob", src, f"{zpool}/blob")
    write_files(src, "a", big=1 << 20)
    (s1,) = be.create([vol], "s1", labels={})
    # Big enough that zfs-fuse is still discarding the half-received data when the pipe has
    # closed: a retry right then would find the target busy unless abort_receive waits.
    write_files(src, "b", big=24 << 20)
    (s2,) = be.create([vol], "s2", labels={})
    target = StreamTarget(f"{zpool_b}/standby/blob")
    be.prepare_receive(target)
    ship(be, s1, target)

    for parent in (s1, None):  # an increment, then a full stream into a new dataset
        tgt = target if parent else StreamTarget(f"{zpool_b}/standby/blob2")
        before = be.received(tgt)
        with pytest.raises(KeyboardInterrupt):
            _process.pipe(be.send(s2, parent), be.receive(tgt), on_chunk=cut(16 << 20),
                          chunk_size=256 << 10)
        assert be.received(tgt) == before  # no half snapshot listed
        assert be.abort_receive(tgt, s2) == []  # zfs-fuse discarded it itself
        ship(be, s2, tgt, parent)  # and the stream restarts cleanly
        assert be.received(tgt)[-1].stream_id == be.stream_id(s2)


def test_zfs_stream_stored_as_bytes_and_received_from_them(zpool: str, zpool_b: str,
                                                           tmp_path: Path) -> None:
    """The object-store path: `send` read by Python into a file, the file later written into
    `receive`. zfs-fuse sends the same bytes each time, so a stored prefix can be checked
    against a new send of the same snapshot."""
    be = ZfsBackend(use_lzc=False)
    subprocess.run(["zfs", "create", f"{zpool}/index"], check=True)
    src = zfs_mountpoint(f"{zpool}/index")
    write_files(src, "one", big=2 << 20)
    (s1,) = be.create([Volume("index", src, f"{zpool}/index")], "s1", labels={})
    want = tree_digest(src)
    stored = tmp_path / "s1.zfs"
    digests = []
    for _ in range(2):
        h = hashlib.sha256()
        with stored.open("wb") as f:
            def keep(chunk: bytes, f: BinaryIO = f) -> None:
                h.update(chunk)
                f.write(chunk)

            _process.read_from(be.send(s1), keep)
        digests.append(h.hexdigest())
    assert digests[0] == digests[1]

    target = StreamTarget(f"{zpool_b}/standby/index")
    be.prepare_receive(target)
    with stored.open("rb") as f:
        _process.write_into(be.receive(target), iter(lambda: f.read(1 << 20), b""))
    be.after_receive(target)
    (got,) = be.received(target)
    assert got.stream_id == be.stream_id(s1)
    assert tree_digest(zfs_mountpoint(target.location)) == want


# -- btrfs --------------------------------------------------------------------------------------


def btrfs_site(mnt: Path) -> tuple[BtrfsBackend, Volume]:
    subprocess.run(["btrfs", "subvolume", "create", str(mnt / "db")], check=True,
                   capture_output=True)
    return BtrfsBackend(snapshot_dir=mnt / ".snaps"), Volume("db", mnt / "db")


def test_btrfs_send_receive_between_loop_mounts(btrfs: Path, btrfs_b: Path) -> None:
    be, vol = btrfs_site(btrfs)
    assert isinstance(be, StreamingBackend)
    write_files(vol.path, "one", big=1 << 20)
    (s1,) = be.create([vol], "s1", labels={})
    want1 = tree_digest(Path(s1.ref))
    write_files(vol.path, "two")
    (s2,) = be.create([vol], "s2", labels={})
    want2 = tree_digest(Path(s2.ref))
    assert want1 != want2

    target = StreamTarget(str(btrfs_b / "standby" / "db"))
    assert be.received(target) == []
    be.prepare_receive(target)
    be.prepare_receive(target)
    assert be.estimate(s1) is None and not be.can_resume(target)

    ship(be, s1, target)
    got = be.received(target)
    assert [(r.name, r.stream_id) for r in got] == [("s1", s1.identity["uuid"])]
    assert got[0].identity["received_uuid"] == be.stream_id(s1)
    assert tree_digest(Path(got[0].ref)) == want1

    parent = newest_common([s1], got, be.stream_id)
    assert parent == s1
    ship(be, s2, target, parent)
    got = be.received(target)
    assert [(r.name, r.stream_id) for r in got] == [("s1", be.stream_id(s1)),
                                                   ("s2", be.stream_id(s2))]
    assert tree_digest(Path(got[1].ref)) == want2

    # Sending a received copy on (pull) carries the original identity along.
    back = StreamTarget(str(btrfs / "pulled"))
    be.prepare_receive(back)
    ship(be, got[0].as_snapshot("db", "btrfs"), back)
    (pulled,) = be.received(back)
    assert pulled.stream_id == be.stream_id(s1)
    assert tree_digest(Path(pulled.ref)) == want1

    # Already there, or the parent missing: clear errors.
    with pytest.raises(StateConflict, match="already has a subvolume"):
        ship(be, s2, target, s1)
    write_files(vol.path, "three")
    (s3,) = be.create([vol], "s3", labels={})
    write_files(vol.path, "four")
    (s4,) = be.create([vol], "s4", labels={})  # s3, its parent, is nowhere on btrfs_b
    with pytest.raises(NotFound, match="does not hold the incremental's parent"):
        ship(be, s4, target, s3)
    assert [r.name for r in be.received(target)] == ["s1", "s2"]


def test_btrfs_plain_directory_is_refused_as_a_target(btrfs: Path) -> None:
    (btrfs / "plain").mkdir()
    be, _ = btrfs_site(btrfs)
    target = StreamTarget(str(btrfs / "plain"))
    with pytest.raises(VolumeError, match="is not a btrfs subvolume"):
        be.received(target)
    with pytest.raises(VolumeError, match="is not a btrfs subvolume"):
        be.prepare_receive(target)


def test_btrfs_interrupted_receive_is_found_and_removed(btrfs: Path, btrfs_b: Path) -> None:
    be, vol = btrfs_site(btrfs)
    write_files(vol.path, "one")
    (s1,) = be.create([vol], "s1", labels={})
    write_files(vol.path, "two", big=6 << 20)
    (s2,) = be.create([vol], "s2", labels={})
    target = StreamTarget(str(btrfs_b / "standby"))
    be.prepare_receive(target)
    ship(be, s1, target)

    with pytest.raises(KeyboardInterrupt):
        _process.pipe(be.send(s2, s1), be.receive(target), on_chunk=cut(2 << 20),
                      chunk_size=256 << 10)
    partial = btrfs_b / "standby" / "s2"
    assert partial.is_dir()  # btrfs leaves the half-written subvolume behind
    assert [r.name for r in be.received(target)] == ["s1"]  # but it is not listed
    with pytest.raises(StateConflict):  # and blocks the next receive until aborted
        ship(be, s2, target, s1)
    assert be.abort_receive(target, s2) == [str(partial)]
    assert not partial.exists()
    assert be.abort_receive(target, s2) == []  # idempotent
    assert be.abort_receive(target, s1) == []  # a complete snapshot is never touched
    ship(be, s2, target, s1)
    got = be.received(target)
    assert [r.stream_id for r in got] == [be.stream_id(s1), be.stream_id(s2)]

    be.destroy_received(target, got[0])  # retention at the target
    be.destroy_received(target, got[0])
    assert [r.name for r in be.received(target)] == ["s2"]
    assert not (btrfs_b / "standby" / "s1").exists()
