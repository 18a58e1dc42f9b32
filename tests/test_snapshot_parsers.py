"""Builders and parsers of the backends (pure; Hypothesis round trips), and the LVM backend run
against a fake runner (there is no device-mapper here)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby import _process
from standby.errors import CommandFailed, ServiceError, UsageError, VolumeError
from standby.snapshot import _fs, btrfs, lvm, zfs, zfs_cli
from standby.snapshot._base import Volume

name_part = st.text(string.ascii_letters + string.digits + "_-.:", min_size=1, max_size=12)
datasets = st.lists(name_part, min_size=1, max_size=5).map("/".join)


# -- ZFS ----------------------------------------------------------------------------------------


@given(st.dictionaries(datasets.map(lambda d: d + "@s"),
                       st.dictionaries(st.sampled_from(["guid", "createtxg", "creation", "type"]),
                                       st.text(string.printable.replace("\t", "").replace(
                                           "\n", "").replace("\r", "").replace("\x0b", "")
                                           .replace("\x0c", ""), min_size=1, max_size=20),
                                       min_size=1), max_size=6))
def test_zfs_get_round_trip(table: dict[str, dict[str, str]]) -> None:
    text = "".join(f"{n}\t{p}\t{v}\n" for n, props in table.items() for p, v in props.items())
    assert zfs_cli.parse_get(text) == table


def test_zfs_get_rejects_garbage() -> None:
    with pytest.raises(ServiceError, match="unexpected"):
        zfs_cli.parse_get("no tabs here\n")


@given(st.integers(0, 2**64 - 1), st.integers(1, 2**40), st.integers(0, 2**33))
def test_zfs_identity(guid: int, txg: int, created: int) -> None:
    ident = zfs_cli.identity_of({"guid": str(guid), "createtxg": str(txg), "creation": str(created)})
    assert ident == {"guid": str(guid), "createtxg": txg, "creation_s": created}
    assert zfs_cli.identity_of({"guid": "-", "createtxg": "-"}) == {}


ZFS_FUSE_USAGE = """missing snapshot argument
usage:
\tsnapshot [-r] [-o property=value] ... <filesystem@snapname|volume@snapname>

For the property list, run: zfs set|get
"""
OPENZFS_USAGE = """missing snapshot argument
usage:
\tsnapshot [-r] [-o property=value]... <filesystem|volume>@<snap> ...

For the property list, run: zfs set|get
"""


def test_zfs_multi_snapshot_detected_from_usage() -> None:
    assert not zfs_cli.parse_multi_snapshot(ZFS_FUSE_USAGE)
    assert zfs_cli.parse_multi_snapshot(OPENZFS_USAGE)
    assert not zfs_cli.parse_multi_snapshot("")


@given(st.lists(st.lists(name_part, min_size=1, max_size=4), min_size=1, max_size=5),
       name_part)
def test_common_ancestor_is_deepest_shared_prefix(tails: list[list[str]], pool: str) -> None:
    ds = ["/".join([pool, *t]) for t in tails]
    anc = zfs_cli.common_ancestor(ds)
    parts = anc.split("/")
    for d in ds:
        assert d == anc or d.startswith(anc + "/")
    # No deeper ancestor covers them all.
    deeper = {d.split("/")[len(parts)] for d in ds if len(d.split("/")) > len(parts)}
    assert len(deeper) != 1 or any(d == anc for d in ds)


def test_common_ancestor_needs_one_pool() -> None:
    with pytest.raises(ValueError, match="different pools"):
        zfs_cli.common_ancestor(["a/x", "b/x"])


def test_zfs_commands() -> None:
    assert zfs_cli.snapshot_cmd("zfs", ["p/a@s", "p/b@s"]).argv == ("zfs", "snapshot", "p/a@s",
                                                                 "p/b@s")
    assert zfs_cli.snapshot_cmd("zfs", ["p@s"], recursive=True).argv == ("zfs", "snapshot", "-r",
                                                                     "p@s")
    assert zfs_cli.get_cmd("zfs", zfs_cli.IDENTITY_PROPS, ["p/a@s"]).argv == (
        "zfs", "get", "-Hp", "-o", "name,property,value", "guid,createtxg,creation", "p/a@s")


class FakeZfs:
    """Answers like zfs-fuse or modern ZFS; records what ran."""

    def __init__(self, usage: str) -> None:
        self.usage = usage
        self.ran: list[tuple[str, ...]] = []
        self.snaps: set[str] = set()
        self.tree = ["p/sb", "p/sb/db", "p/sb/blob", "p/sb/other"]

    def __call__(self, cmd: _process.Command, check: bool = True) -> _process.Result:
        a = cmd.argv
        self.ran.append(a)
        out = b""
        if a[1:] == ("snapshot",):
            return _process.Result(a, 2, b"", self.usage.encode())
        if a[1] == "snapshot":
            names = [x for x in a[2:] if x != "-r"]
            if "-r" in a:
                root, snap = names[0].split("@")
                names = [f"{d}@{snap}" for d in self.tree if d == root or
                         d.startswith(root + "/")]
            self.snaps.update(names)
        elif a[1] == "destroy":
            self.snaps.discard(a[2])
        elif a[1] == "list":
            out = "\n".join(self.tree).encode() + b"\n"
        elif a[1] == "get":
            out = b"".join(f"{n}\tguid\t{i + 7}\n{n}\tcreatetxg\t42\n".encode()
                           for i, n in enumerate(a[6:]))
        return _process.Result(a, 0, out, b"")


def _vols() -> list[Volume]:
    return [Volume("db", Path("/x/db"), "p/sb/db"), Volume("blob", Path("/x/blob"), "p/sb/blob")]


def test_zfs_fuse_atomic_uses_recursive_snapshot_and_drops_the_extras() -> None:
    fake = FakeZfs(ZFS_FUSE_USAGE)
    be = zfs.ZfsBackend(run=fake, use_lzc=False)
    assert not be.capabilities.multi_snapshot
    snaps = be.create(_vols(), "n1", labels={})
    assert ("zfs", "snapshot", "-r", "p/sb@n1") in fake.ran
    assert fake.snaps == {"p/sb/db@n1", "p/sb/blob@n1"}
    assert [s.identity["createtxg"] for s in snaps] == [42, 42]
    assert be.preview(_vols(), "n2")[0] == "zfs snapshot -r p/sb@n2"


def test_modern_zfs_atomic_is_one_multi_name_call() -> None:
    fake = FakeZfs(OPENZFS_USAGE)
    be = zfs.ZfsBackend(run=fake, use_lzc=False)
    be.create(_vols(), "n1", labels={})
    assert ("zfs", "snapshot", "p/sb/db@n1", "p/sb/blob@n1") in fake.ran
    assert not any("-r" in a for a in fake.ran)


def test_pyzfs_is_used_when_importable() -> None:
    class Lzc:
        def __init__(self) -> None:
            self.called: list[list[bytes]] = []

        def lzc_snapshot(self, snaps: list[bytes]) -> None:
            self.called.append(snaps)

    fake, lzc = FakeZfs(ZFS_FUSE_USAGE), Lzc()
    be = zfs.ZfsBackend(run=fake, lzc=lzc)
    assert be.capabilities.lzc and be.capabilities.multi_snapshot
    be.create(_vols(), "n1", labels={})
    assert lzc.called == [[b"p/sb/db@n1", b"p/sb/blob@n1"]]
    assert be.preview(_vols(), "n1") == ["lzc_snapshot([p/sb/db@n1, p/sb/blob@n1])"]


# -- btrfs --------------------------------------------------------------------------------------

SHOW_KEYS = ["Name", "UUID", "Parent UUID", "Received UUID", "Creation time", "Subvolume ID",
             "Generation", "Gen at creation", "Parent ID", "Top level ID", "Flags"]


@given(st.fixed_dictionaries({k: st.text(string.ascii_letters + string.digits + "-:+ ",
                                         min_size=1, max_size=30).map(str.strip).filter(bool)
                              for k in SHOW_KEYS}))
def test_btrfs_show_round_trip(fields: dict[str, str]) -> None:
    text = ".standby-snapshots/db/x\n" + "".join(f"\t{k}: \t\t{v}\n" for k, v in fields.items())
    text += "\tSnapshot(s):\n\t\t\t\tsomething\n"
    assert btrfs.parse_show(text) == fields


def test_btrfs_identity_and_commands() -> None:
    ident = btrfs.identity_of({"UUID": "298177cf-d433", "Parent UUID": "-", "Generation": "7",
                               "Subvolume ID": "257"})
    assert ident == {"uuid": "298177cf-d433", "generation": 7, "id": 257}
    assert btrfs.snapshot_cmd("btrfs", Path("/m/db"), Path("/m/s/db/n")).argv == (
        "btrfs", "subvolume", "snapshot", "-r", "/m/db", "/m/s/db/n")


def test_btrfs_on_another_file_system_is_refused(tmp_path: Path) -> None:
    be = btrfs.BtrfsBackend(fs_type_of=lambda p: "ext4")
    with pytest.raises(VolumeError, match="on ext4, not btrfs"):
        be.check(Volume("index", tmp_path))
    with pytest.raises(UsageError, match="--atomic"):
        be.atomic_groups([Volume("db", tmp_path), Volume("blob", tmp_path)])


# -- mountinfo ----------------------------------------------------------------------------------

MOUNTINFO = """22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/with\\040space rw - tmpfs tmpfs rw
41 22 7:0 / /srv/bt rw,relatime shared:2 - btrfs /dev/loop0 rw,space_cache=v2
42 41 0:50 / /srv/bt/zfs rw - fuse zfs-fuse rw
"""


def test_mountinfo_finds_the_innermost_mount() -> None:
    ms = _fs.parse_mountinfo(MOUNTINFO)
    assert [m.fstype for m in ms] == ["ext4", "tmpfs", "btrfs", "fuse"]
    assert ms[1].mount_point == "/srv/with space"
    assert _fs.mount_of(Path("/srv/bt/db"), ms).fstype == "btrfs"  # type: ignore[union-attr]
    assert _fs.mount_of(Path("/srv/bt/zfs/x"), ms).fstype == "fuse"  # type: ignore[union-attr]
    assert _fs.mount_of(Path("/srv/btx"), ms).fstype == "ext4"  # type: ignore[union-attr]


# -- LVM ----------------------------------------------------------------------------------------

lv_names = st.text(string.ascii_letters + string.digits + "+_.", min_size=1, max_size=20)
lvs_rows = st.builds(lvm.LogicalVolume, lv_name=lv_names, vg_name=lv_names,
                     lv_uuid=st.text(string.ascii_letters + string.digits + "-", max_size=38),
                     origin=st.one_of(st.just(""), lv_names),
                     lv_time=st.text(string.digits + "-: +", max_size=25),
                     lv_attr=st.text("swi-aoS", min_size=10, max_size=10),
                     lv_size=st.integers(0, 2**50))


@given(st.lists(lvs_rows, max_size=6))
def test_lvs_json_round_trip(rows: list[lvm.LogicalVolume]) -> None:
    assert lvm.parse_lvs(lvm.render_lvs(rows)) == rows


@given(st.text(max_size=50))
def test_lvs_parser_never_raises_anything_but_service_error(text: str) -> None:
    try:
        lvm.parse_lvs(text)
    except ServiceError:
        pass


def test_lvs_real_output_shape() -> None:
    text = json.dumps({"report": [{"lv": [
        {"lv_name": "db-standby-set-1", "vg_name": "vg0", "lv_uuid": "abc-123",
         "origin": "db", "lv_time": "2026-11-29 01:00:00 +0000", "lv_attr": "swi-a-s---",
         "lv_size": "1073741824"}]}]})
    (lv,) = lvm.parse_lvs(text)
    assert lv.is_snapshot and lv.origin == "db" and lv.lv_size == 1 << 30


def test_lvm_commands() -> None:
    assert lvm.lvcreate_cmd("vg0/db", "standby-set-x", "2G").argv == (
        "lvcreate", "--snapshot", "--name", "db-standby-set-x", "--size", "2G", "--addtag",
        "standby", "vg0/db")
    assert lvm.lvremove_cmd("vg0/db-s").argv == ("lvremove", "--yes", "vg0/db-s")
    assert lvm.lvs_cmd(["vg0/db"]).argv[:3] == ("lvs", "--reportformat", "json")
    with pytest.raises(VolumeError, match="VG/LV"):
        lvm.split_lv("justone")


def test_lvm_backend_freezes_around_lvcreate_and_cleans_up() -> None:
    ran: list[tuple[str, ...]] = []
    lvs = lvm.render_lvs([lvm.LogicalVolume("db-n", "vg0", "U-1", "db", "t", "swi-a-s---", 1)])

    def run(cmd: _process.Command, check: bool = True) -> _process.Result:
        ran.append(cmd.argv)
        if cmd.argv[0] == "lvcreate" and "fail" in cmd.argv[3]:
            raise CommandFailed(cmd.argv, 5, "Insufficient free space")
        out = lvs.encode() if cmd.argv[0] == "lvs" else b""
        return _process.Result(cmd.argv, 0, out, b"")

    be = lvm.LvmBackend(run=run)
    v = Volume("db", Path("/srv/db"), "vg0/db")
    be.check(v)
    (snap,) = be.create([v], "n", labels={})
    assert snap.ref == "vg0/db-n" and snap.identity["lv_uuid"] == "U-1"
    assert [a[0] for a in ran[1:5]] == ["fsfreeze", "lvcreate", "fsfreeze", "lvs"]
    assert ran[1][1] == "--freeze" and ran[3][1] == "--unfreeze"
    ran.clear()
    with pytest.raises(ServiceError, match="Insufficient free space"):
        be.create([v], "fail", labels={})
    assert ran[-1] == ("fsfreeze", "--unfreeze", "/srv/db")  # thawed even on failure
    be.destroy(snap)
    assert ran[-1] == ("lvremove", "--yes", "vg0/db-n")
    with pytest.raises(UsageError, match="--atomic"):
        be.atomic_groups([v, Volume("blob", Path("/srv/blob"), "vg0/blob")])
