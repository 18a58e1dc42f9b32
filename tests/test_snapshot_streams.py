"""Streams, pure: the send/receive argv builders of zfs and btrfs, their parsers (Hypothesis
round trips), capability detection from real usage texts, the backends' logic against a fake
runner that answers like OpenZFS or zfs-fuse, `over_ssh` quoting, and `_process.pipe` with small
real processes. The real `zfs send | zfs recv` and `btrfs send | btrfs receive` are in
tests/test_snapshot_streams_live.py."""

from __future__ import annotations

import os
import shlex
import string
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby import _process
from standby.errors import (
    CommandFailed,
    FormatError,
    NotFound,
    ServiceError,
    StateConflict,
    UsageError,
    VolumeError,
)
from standby.snapshot import btrfs, zfs, zfs_cli
from standby.snapshot._base import (
    Received,
    Snapshot,
    SnapshotBackend,
    StreamingBackend,
    StreamTarget,
    error_text,
    newest_common,
)
from standby.snapshot.dir import DirBackend
from standby.snapshot.ebs import EbsBackend
from standby.snapshot.lvm import LvmBackend

name_part = st.text(string.ascii_letters + string.digits + "_-.:", min_size=1, max_size=12)
datasets = st.lists(name_part, min_size=2, max_size=4).map("/".join)

# Printed by this machine's zfs-fuse 0.7.0 (`zfs send`, `zfs receive` without operands).
FUSE_SEND = """missing snapshot argument
usage:
\tsend [-RDp] [-[iI] snapshot] <snapshot>

For the property list, run: zfs set|get

For the delegated permission list, run: zfs allow|unallow
"""
FUSE_RECV = """missing snapshot argument
usage:
\treceive [-vnF] <filesystem|volume|snapshot>
\treceive [-vnF] -d <filesystem>

For the property list, run: zfs set|get
"""
# OpenZFS 2.x (cmd/zfs/zfs_main.c, HELP_SEND and HELP_RECEIVE).
OPENZFS_SEND = """usage:
\tsend [-DLPbcehnpsVvw] [-i|-I snapshot]
\t     [-R [-X dataset[,dataset]...]]     <snapshot>
\tsend [-DnVvPLecw] [-i snapshot|bookmark] <filesystem|volume|snapshot>
\tsend [-DnPpVvLec] [-i bookmark|snapshot] --redact <bookmark> <snapshot>
\tsend [-nVvPe] -t <receive_resume_token>
\tsend [-PnVv] --saved filesystem

For the property list, run: zfs set|get
"""
OPENZFS_RECV = """usage:
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ...
\t    <filesystem|volume|snapshot>
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ...
\t    [-d | -e] <filesystem>
\treceive -A <filesystem|volume>

For the property list, run: zfs set|get
"""


def snap(ref: str, **identity: object) -> Snapshot:
    return Snapshot(volume="db", backend="zfs", name=ref.split("@")[-1].split("/")[-1],
                    ref=ref, identity=identity)


# -- ZFS builders and parsers -------------------------------------------------------------------


def test_zfs_stream_commands() -> None:
    assert zfs_cli.send_cmd("zfs", "p/db@b").argv == ("zfs", "send", "p/db@b")
    assert zfs_cli.send_cmd("zfs", "p/db@b", "p/db@a").argv == ("zfs", "send", "-i", "p/db@a",
                                                            "p/db@b")
    assert zfs_cli.estimate_cmd("zfs", "p/db@b", "p/db@a").argv == (
        "zfs", "send", "-nP", "-i", "p/db@a", "p/db@b")
    assert zfs_cli.resume_send_cmd("zfs", "1-ab-cd").argv == ("zfs", "send", "-t", "1-ab-cd")
    assert zfs_cli.receive_cmd("zfs", "q/sb/db").argv == ("zfs", "recv", "q/sb/db")
    assert zfs_cli.receive_cmd("zfs", "q/sb/db", resumable=True, rollback=True).argv == (
        "zfs", "recv", "-s", "-F", "q/sb/db")
    assert zfs_cli.abort_receive_cmd("zfs", "q/sb/db").argv == ("zfs", "recv", "-A", "q/sb/db")
    assert zfs_cli.received_cmd("zfs", "q/sb/db").argv == (
        "zfs", "get", "-Hp", "-d", "1", "-o", "name,property,value",
        "type,guid,createtxg,creation", "q/sb/db")
    assert zfs_cli.create_parents_cmd("zfs", "q/sb").argv == ("zfs", "create", "-p", "q/sb")


def test_usage_flags_of_zfs_fuse_and_openzfs() -> None:
    assert zfs_cli.parse_usage_flags(FUSE_SEND) == frozenset("RDpiI")
    assert zfs_cli.parse_usage_flags(FUSE_RECV) == frozenset("vnFd")
    assert {"t", "n", "P", "i", "I", "R", "X"} <= zfs_cli.parse_usage_flags(OPENZFS_SEND)
    assert {"s", "A", "F", "o", "x", "d", "e"} <= zfs_cli.parse_usage_flags(OPENZFS_RECV)
    fuse = zfs.StreamCapabilities.of(zfs_cli.parse_usage_flags(FUSE_SEND),
                                     zfs_cli.parse_usage_flags(FUSE_RECV))
    assert fuse == zfs.StreamCapabilities(send_token=False, recv_resumable=False, estimate=False)
    modern = zfs.StreamCapabilities.of(zfs_cli.parse_usage_flags(OPENZFS_SEND),
                                       zfs_cli.parse_usage_flags(OPENZFS_RECV))
    assert modern == zfs.StreamCapabilities(send_token=True, recv_resumable=True, estimate=True)
    # A receive with -s but without -A (no way to discard the partial state) is not resumable.
    assert not zfs.StreamCapabilities.of(frozenset("t"), frozenset("sF")).recv_resumable


letters = st.text(string.ascii_letters, min_size=1, max_size=6)


@given(st.lists(st.tuples(st.sampled_from(["cluster", "bare", "nested", "long"]), letters),
                min_size=1, max_size=6))
def test_usage_flags_round_trip(parts: list[tuple[str, str]]) -> None:
    words, want = [], set()
    for kind, flags in parts:
        if kind == "cluster":
            words.append(f"[-{flags}]")
        elif kind == "bare":
            words.append(f"-{flags} <x>")
        elif kind == "nested":
            words.append(f"[-[{flags}] snapshot]")
        else:
            words.append(f"--{flags.lower()} <x>")  # long options are not letters
            continue
        want |= set(flags)
    usage = "missing argument\nusage:\n\tsend " + " ".join(words) + " <snapshot>\n\n" + \
        "For the property list, run: zfs set|get\n\t-x not an option of send\n"
    assert zfs_cli.parse_usage_flags(usage) == frozenset(want)


guids = st.integers(0, 2**64 - 1).map(str)


@given(datasets, st.lists(st.tuples(name_part, guids, st.integers(1, 2**40),
                                    st.integers(0, 2**33)),
                          max_size=6, unique_by=lambda t: t[0]))
def test_zfs_received_round_trip(ds: str, snaps: list[tuple[str, str, int, int]]) -> None:
    lines = [f"{ds}\ttype\tfilesystem", f"{ds}\tguid\t77", f"{ds}/child\ttype\tfilesystem",
             f"{ds}/child@x\ttype\tsnapshot", f"{ds}/child@x\tguid\t78"]
    for name, guid, txg, created in snaps:
        ref = f"{ds}@{name}"
        lines += [f"{ref}\ttype\tsnapshot", f"{ref}\tguid\t{guid}",
                  f"{ref}\tcreatetxg\t{txg}", f"{ref}\tcreation\t{created}"]
    got = zfs_cli.parse_received("\n".join(lines) + "\n", ds)
    want = sorted(snaps, key=lambda t: (t[2], t[0]))
    assert [(r.name, r.ref, r.stream_id) for r in got] == [(n, f"{ds}@{n}", g)
                                                           for n, g, _, _ in want]
    assert [r.identity for r in got] == [{"guid": g, "createtxg": t, "creation_s": c}
                                         for _, g, t, c in want]


@given(st.integers(0, 2**50), st.booleans())
def test_zfs_estimate_round_trip(size: int, incremental: bool) -> None:
    first = (f"incremental\ta\tp/db@b\t{size}" if incremental else f"full\tp/db@b\t{size}")
    assert zfs_cli.parse_estimate(f"{first}\nsize\t{size}\n") == size
    assert zfs_cli.parse_estimate("") is None


# -- ZFS backend logic against a fake runner ----------------------------------------------------


class FakeZfs:
    """Answers stream questions like OpenZFS (`modern`) or zfs-fuse; records what ran."""

    def __init__(self, *, modern: bool, token: str = "-") -> None:
        self.modern = modern
        self.token = token
        self.ran: list[tuple[str, ...]] = []

    def __call__(self, cmd: _process.Command, check: bool = True) -> _process.Result:
        a = cmd.argv
        self.ran.append(a)
        if a[0] == "ssh":
            a = tuple(shlex.split(a[-1]))  # what the remote host would run
        out, err, rc = "", "", 0
        if a[1:] == ("send",):
            err, rc = (OPENZFS_SEND if self.modern else FUSE_SEND), 2
        elif a[1:] == ("receive",):
            err, rc = (OPENZFS_RECV if self.modern else FUSE_RECV), 2
        elif a[1:3] == ("send", "-nP"):
            out = f"full\t{a[-1]}\t4096\nsize\t4096\n"
        elif a[1] == "get" and "receive_resume_token" in a:
            out = f"{a[-1]}\treceive_resume_token\t{self.token}\n"
        elif a[1] == "get" and "referenced" in a:
            out = f"{a[-1]}\treferenced\t123456\n"
        elif a[1] == "get" and "-d" in a:
            out = f"{a[-1]}\ttype\tfilesystem\n{a[-1]}@s1\ttype\tsnapshot\n{a[-1]}@s1\tguid\t9\n"
        elif a[1] == "recv" and "-A" in a:
            self.token = "-"
        result = _process.Result(cmd.argv, rc, out.encode(), err.encode())
        if check and rc:
            raise CommandFailed(cmd.argv, rc, err)
        return result


def test_openzfs_resumes_with_its_token() -> None:
    fake = FakeZfs(modern=True, token="1-c0ffee-42")
    be = zfs.ZfsBackend(run=fake, use_lzc=False)
    assert isinstance(be, StreamingBackend)
    t = StreamTarget("q/sb/db")
    assert be.can_resume(t)
    assert be.receive(t, resumable=True).argv == ("zfs", "recv", "-s", "q/sb/db")
    assert be.resume_token(t) == "1-c0ffee-42"
    assert be.resume_send("1-c0ffee-42").argv == ("zfs", "send", "-t", "1-c0ffee-42")
    with pytest.raises(UsageError, match="not a ZFS receive_resume_token"):
        be.resume_send("1 c0ffee")
    assert be.abort_receive(t, snap("p/db@s2")) == ["q/sb/db (partial receive of s2)"]
    assert ("zfs", "recv", "-A", "q/sb/db") in fake.ran
    assert be.resume_token(t) is None and be.abort_receive(t, snap("p/db@s2")) == []
    assert be.estimate(snap("p/db@s2")) == 4096
    usage_runs = [a for a in fake.ran if a[1:] in (("send",), ("receive",))]
    assert len(usage_runs) == 2  # detected once, then cached


def test_zfs_fuse_refuses_resume_and_estimates_a_full_stream() -> None:
    fake = FakeZfs(modern=False)
    be = zfs.ZfsBackend(run=fake, use_lzc=False)
    t = StreamTarget("q/sb/db")
    assert not be.can_resume(t)
    with pytest.raises(ServiceError, match=r"cannot keep a partial receive \(`zfs recv -s`\)"):
        be.receive(t, resumable=True)
    with pytest.raises(ServiceError, match=r"cannot resume a stream \(`zfs send -t`\)") as ei:
        be.resume_send("1-abc")
    assert "zfs-fuse" in (ei.value.hint or "")
    assert be.resume_token(t) is None
    assert not any("receive_resume_token" in a for a in fake.ran)  # not even asked
    assert be.estimate(snap("p/db@s2")) == 123456  # its referenced bytes
    assert be.estimate(snap("p/db@s2"), snap("p/db@s1")) is None
    assert not any("-nP" in a for a in fake.ran)


class Leftover(FakeZfs):
    """zfs-fuse still discarding an interrupted receive for the first `polls` looks: a
    half-received new dataset (`full`) or the temporary clone `%<snapshot>` of an increment."""

    def __init__(self, polls: int, *, full: bool) -> None:
        super().__init__(modern=False)
        self.polls, self.full = polls, full

    def __call__(self, cmd: _process.Command, check: bool = True) -> _process.Result:
        a = cmd.argv
        self.ran.append(a)
        gone = _process.Result(a, 1, b"", f"cannot open '{a[-1]}': dataset does not "
                               "exist\n".encode())
        if a[1] == "get" and "-d" in a:
            self.polls -= 1
            if self.full and self.polls >= 0:
                return _process.Result(a, 0, f"{a[-1]}\ttype\tfilesystem\n".encode(), b"")
            if self.full:
                return gone
            return _process.Result(a, 0, f"{a[-1]}@s1\ttype\tsnapshot\n{a[-1]}@s1\tguid\t9\n"
                                   .encode(), b"")
        if a[1] == "get" and a[-1].endswith("/%s2") and not self.full and self.polls >= 0:
            return _process.Result(a, 0, f"{a[-1]}\ttype\tfilesystem\n".encode(), b"")
        if a[1] == "get" and "%" in a[-1]:
            return gone
        return super().__call__(cmd, check)


@pytest.mark.parametrize("full", [True, False])
def test_zfs_fuse_abort_waits_until_the_interrupted_receive_is_discarded(full: bool) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    fake = Leftover(polls=3, full=full)
    be = zfs.ZfsBackend(run=fake, use_lzc=False, sleep=sleep, clock=lambda: now[0])
    assert be.abort_receive(StreamTarget("q/sb/db"), snap("p/db@s2")) == []
    assert len(slept) == 3 and not any("-A" in a for a in fake.ran)

    stuck = zfs.ZfsBackend(run=Leftover(polls=10**6, full=full), use_lzc=False, sleep=sleep,
                           clock=lambda: now[0])
    left = "q/sb/db exists without any snapshot" if full else "q/sb/db/%s2 exists"
    wait = f"{zfs.ZfsBackend.discard_wait_s:g} s"
    with pytest.raises(StateConflict, match=f"{left} after {wait}") as ei:
        stuck.abort_receive(StreamTarget("q/sb/db"), snap("p/db@s2"))
    assert f"`zfs destroy {left.split()[0]}` there" in (ei.value.hint or "")


def test_zfs_remote_target_runs_over_ssh_and_detects_there() -> None:
    fake = FakeZfs(modern=True)
    be = zfs.ZfsBackend(run=fake, use_lzc=False)
    far = _process.Remote("10.0.0.9", user="standby")
    t = StreamTarget("q/sb/db", remote=far)
    cmd = be.receive(t, rollback=True)
    assert cmd.argv[:2] == ("ssh", "-o") and cmd.argv[-2] == "10.0.0.9"
    assert shlex.split(cmd.argv[-1]) == ["zfs", "recv", "-F", "q/sb/db"]
    (r,) = be.received(t)
    assert (r.name, r.ref, r.stream_id) == ("s1", "q/sb/db@s1", "9")
    assert be.can_resume(t)
    usage = [(a[0], a[-1]) for a in fake.ran if a[-1] in ("zfs send", "zfs receive")
             or a[1:] in (("send",), ("receive",))]
    # The sender's zfs is asked here and the receiver's there, each once.
    assert sorted(usage) == [("ssh", "zfs receive"), ("ssh", "zfs send"), ("zfs", "receive"),
                             ("zfs", "send")]
    pull = be.send(snap("q/sb/db@s2"), snap("q/sb/db@s1"), remote=far)
    assert shlex.split(pull.argv[-1]) == ["zfs", "send", "-i", "q/sb/db@s1", "q/sb/db@s2"]


def test_zfs_stream_argument_checks() -> None:
    be = zfs.ZfsBackend(run=FakeZfs(modern=True), use_lzc=False)
    with pytest.raises(UsageError, match="same dataset"):
        be.send(snap("p/db@b"), snap("p/blob@a"))
    with pytest.raises(UsageError, match="not a ZFS snapshot"):
        be.send(snap("p/db"))
    for bad in ("q", "q/db@x", "-q/db", "q/d b", ""):
        with pytest.raises(UsageError):
            be.receive(StreamTarget(bad))
    with pytest.raises(FormatError, match="no ZFS guid"):
        be.stream_id(snap("p/db@a"))
    assert be.stream_id(snap("p/db@a", guid="123")) == "123"


ZFS_FAILURES = [
    ("cannot receive incremental stream: most recent snapshot of q/db does not\n"
     "match incremental source\n", NotFound, "not the incremental's parent"),
    ("cannot receive incremental stream: destination 'q/db' does not exist\n", NotFound,
     "does not hold the incremental's parent"),
    ("cannot receive incremental stream: destination q/db has been modified\n"
     "since most recent snapshot\n", StateConflict, "changed since its newest snapshot"),
    ("cannot receive new filesystem stream: destination has snapshots (eg. q/db@s1)\n"
     "must destroy them to overwrite it\n", StateConflict, "already has snapshots"),
    ("cannot receive new filesystem stream: destination 'q/db' exists\n"
     "must specify -F to overwrite it\n", StateConflict, "already exists"),
    ("cannot receive incremental stream: dataset is busy\n", StateConflict, "is busy"),
    ("cannot receive new filesystem stream: dataset does not exist\n", VolumeError,
     "parent dataset"),
    ("cannot receive: out of space\n", ServiceError, "zfs stream to q/db failed"),
]
ZFS_SEND_FAILURES = [  # zfs-fuse, then OpenZFS, on a snapshot that is gone
    ("WARNING: could not send p/db@zz: does not exist\n", NotFound, "to send is gone"),
    ("cannot open 'p/db@zz': dataset does not exist\n", NotFound, "to send is gone"),
    ("warning: cannot send 'p/db@b': Broken pipe\n", ServiceError, "zfs stream to q/db failed"),
]


@pytest.mark.parametrize(("side", "stderr", "kind", "says"),
                         [("recv", *f) for f in ZFS_FAILURES]
                         + [("send", *f) for f in ZFS_SEND_FAILURES])
def test_zfs_stream_errors_are_translated(side: str, stderr: str, kind: type,
                                          says: str) -> None:
    be = zfs.ZfsBackend(run=FakeZfs(modern=False), use_lzc=False)
    argv = ("zfs", side, "p/db@b")
    for failed in (argv, _process.over_ssh(_process.Command(argv), _process.Remote("h")).argv):
        err = be.stream_error(CommandFailed(failed, 1, stderr), StreamTarget("q/db"))
        assert type(err) is kind and says in err.message, err


def test_error_text_joins_a_wrapped_message_and_skips_progress() -> None:
    wrapped = CommandFailed(("zfs",), 1, "cannot receive: destination q/db has been modified\n"
                                         "since most recent snapshot\n")
    assert error_text(wrapped) == ("cannot receive: destination q/db has been modified since "
                                   "most recent snapshot")
    progress = CommandFailed(("btrfs",), 1, "At snapshot s5\nERROR: cannot find parent "
                                            "subvolume\n")
    assert error_text(progress) == "ERROR: cannot find parent subvolume"
    assert error_text(CommandFailed(("x",), 3, "")) == "exit code 3"


# -- btrfs builders and parsers -----------------------------------------------------------------


def test_btrfs_stream_commands() -> None:
    assert btrfs.send_cmd("btrfs", Path("/s/db/b")).argv == ("btrfs", "send", "/s/db/b")
    assert btrfs.send_cmd("btrfs", Path("/s/db/b"), Path("/s/db/a")).argv == (
        "btrfs", "send", "-p", "/s/db/a", "/s/db/b")
    assert btrfs.receive_cmd("btrfs", Path("/r/db")).argv == ("btrfs", "receive", "/r/db")
    assert btrfs.list_cmd("btrfs", Path("/r/db")).argv == (
        "btrfs", "subvolume", "list", "-o", "-R", "-u", "-q", "/r/db")


uuids = st.uuids().map(str)
paths = st.lists(st.text(string.ascii_letters + string.digits + "-_. ", min_size=1,
                         max_size=10).filter(lambda s: s.strip() == s and s not in (".", "..")),
                 min_size=1, max_size=3).map("/".join)
list_rows = st.fixed_dictionaries({
    "id": st.integers(256, 2**40).map(str), "gen": st.integers(1, 2**40).map(str),
    "top_level": st.integers(5, 2**40).map(str),
    "parent_uuid": st.one_of(st.just("-"), uuids),
    "received_uuid": st.one_of(st.just("-"), uuids), "uuid": uuids, "path": paths})


def render_list(rows: list[dict[str, str]]) -> str:
    """As btrfs-progs prints `subvolume list -R -u -q` ("-" padded to a uuid's width)."""
    def u(v: str) -> str:
        return v.ljust(36)

    return "".join(f"ID {r['id']} gen {r['gen']} top level {r['top_level']} parent_uuid "
                   f"{u(r['parent_uuid'])} received_uuid {u(r['received_uuid'])} uuid "
                   f"{r['uuid']} path {r['path']}\n" for r in rows)


@given(st.lists(list_rows, max_size=6))
def test_btrfs_list_round_trip(rows: list[dict[str, str]]) -> None:
    assert btrfs.parse_list(render_list(rows)) == rows


def test_btrfs_list_rejects_garbage() -> None:
    with pytest.raises(ServiceError, match="unexpected"):
        btrfs.parse_list("ID x gen\n")


@given(st.lists(list_rows, max_size=8, unique_by=lambda r: r["id"]),
       st.sampled_from(["/", "standby/db"]))
def test_btrfs_received_keeps_complete_direct_children(rows: list[dict[str, str]],
                                                        where: str) -> None:
    prefix = "" if where == "/" else where + "/"
    placed = []
    for i, r in enumerate(rows):  # direct children, nested ones, and ones elsewhere
        name = r["path"].replace("/", "_").replace(" ", "_")
        path = [prefix + name, prefix + "deeper/" + name, "elsewhere/" + name][i % 3]
        placed.append({**r, "path": path})
    got = btrfs.parse_received(render_list(placed), where, Path("/mnt/r"))
    want = sorted((r for i, r in enumerate(placed)
                   if i % 3 == 0 and r["received_uuid"] != "-"
                   and (prefix or "/" not in r["path"])),
                  key=lambda r: int(r["id"]))
    assert [(g.name, g.ref, g.stream_id) for g in got] == [
        (r["path"][len(prefix):], f"/mnt/r/{r['path'][len(prefix):]}", r["received_uuid"])
        for r in want]


def test_btrfs_show_path_and_received_identity() -> None:
    assert btrfs.show_path("/\n\tName: \t\t\t<FS_TREE>\n") == "/"
    assert btrfs.show_path("standby/db\n\tName: \t\t\tdb\n") == "standby/db"
    ident = btrfs.identity_of({"UUID": "u-2", "Parent UUID": "u-1", "Received UUID": "r-9",
                               "Generation": "12", "Subvolume ID": "258"})
    assert ident == {"uuid": "u-2", "parent_uuid": "u-1", "received_uuid": "r-9",
                     "generation": 12, "id": 258}


def test_btrfs_stream_id_and_refusals() -> None:
    be = btrfs.BtrfsBackend(run=FakeZfs(modern=False))
    assert isinstance(be, StreamingBackend)
    t = StreamTarget("/r/db")
    own = Snapshot("db", "btrfs", "s1", "/s/db/s1", {"uuid": "u-1"})
    relayed = Snapshot("db", "btrfs", "s1", "/r/db/s1", {"uuid": "u-7", "received_uuid": "u-1"})
    assert be.stream_id(own) == be.stream_id(relayed) == "u-1"
    with pytest.raises(FormatError):
        be.stream_id(Snapshot("db", "btrfs", "s1", "/s/db/s1"))
    assert not be.can_resume(t) and be.resume_token(t) is None and be.estimate(own) is None
    with pytest.raises(ServiceError, match="cannot resume"):
        be.receive(t, resumable=True)
    with pytest.raises(ServiceError, match="cannot resume"):
        be.resume_send("x")
    with pytest.raises(UsageError, match="absolute"):
        be.receive(StreamTarget("relative/db"))
    far = StreamTarget("/r/db", remote=_process.Remote("h"))
    assert shlex.split(be.receive(far).argv[-1]) == ["btrfs", "receive", "/r/db"]
    with pytest.raises(UsageError, match="is not a snapshot in"):
        be.destroy_received(t, Received("s1", "/elsewhere/s1", "u-1"))


def test_only_zfs_and_btrfs_stream(tmp_path: Path) -> None:
    assert isinstance(zfs.ZfsBackend(use_lzc=False), StreamingBackend)
    assert isinstance(btrfs.BtrfsBackend(), StreamingBackend)
    for other in (DirBackend(tmp_path), LvmBackend(), EbsBackend(None)):
        assert isinstance(other, SnapshotBackend) and not isinstance(other, StreamingBackend)


BTRFS_FAILURES = [
    ("receive", "At snapshot s5\nERROR: cannot find parent subvolume\n", NotFound,
     "does not hold the incremental's parent"),
    ("receive", "At subvol s1\nERROR: creating subvolume s1 failed: File exists\n",
     StateConflict, "already has a subvolume"),
    ("receive", "ERROR: short read from stream\n", ServiceError, "btrfs stream to /r/db failed"),
    ("send", "ERROR: unable to resolve /s/db/zz\n", NotFound, "to send is gone"),
    ("send", "ERROR: subvolume /m/vol is not read-only\n", UsageError, "read-only"),
]


@pytest.mark.parametrize(("side", "stderr", "kind", "says"), BTRFS_FAILURES)
def test_btrfs_stream_errors_are_translated(side: str, stderr: str, kind: type,
                                            says: str) -> None:
    be = btrfs.BtrfsBackend()
    err = be.stream_error(CommandFailed(("btrfs", side, "/x"), 1, stderr), StreamTarget("/r/db"))
    assert type(err) is kind and says in err.message


# -- choosing the incremental parent ------------------------------------------------------------


@given(st.lists(st.integers(0, 30), max_size=10, unique=True),
       st.sets(st.integers(0, 30), max_size=10))
def test_newest_common_is_the_newest_held_there(local: list[int], there: set[int]) -> None:
    snaps = [snap(f"p/db@s{i}", guid=str(i)) for i in local]
    received = [Received(f"s{i}", f"q/db@s{i}", str(i)) for i in sorted(there)]
    got = newest_common(snaps, received, lambda s: str(s.identity["guid"]))
    held = [s for s in snaps if int(s.identity["guid"]) in there]
    assert got == (held[-1] if held else None)


# -- over_ssh -----------------------------------------------------------------------------------

words = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                max_size=20)


@given(st.lists(words, min_size=1, max_size=6),
       st.dictionaries(st.text(string.ascii_uppercase + "_", min_size=1, max_size=8), words,
                       max_size=2))
def test_over_ssh_remote_command_round_trips(argv: list[str], env: dict[str, str]) -> None:
    cmd = _process.Command(tuple(argv), env=env, timeout=5)
    far = _process.over_ssh(cmd, _process.Remote("h.example", user="u", port=2222,
                                                 identity=Path("/k/id"),
                                                 options=("BatchMode=yes", "ConnectTimeout=5")))
    assert far.argv[:-2] == ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-p",
                             "2222", "-i", "/k/id", "-l", "u", "--")
    assert far.argv[-2] == "h.example" and far.timeout == 5 and not far.env
    prefix = ["env", *(f"{k}={v}" for k, v in sorted(env.items()))] if env else []
    assert shlex.split(far.argv[-1]) == prefix + argv


def test_remote_names_are_checked() -> None:
    for host in ("-oProxyCommand=x", "a b", "u@h", "", "h/x"):
        with pytest.raises(UsageError):
            _process.Remote(host)
    with pytest.raises(UsageError):
        _process.Remote("h", user="-l")
    with pytest.raises(UsageError, match="out of range"):
        _process.Remote("h", port=70000)
    assert str(_process.Remote("h", user="u", port=22)) == "u@h:22"
    cmd = _process.Command(("zfs", "list"))
    assert _process.located(cmd, None) is cmd
    with pytest.raises(ValueError, match="working directory"):
        _process.over_ssh(_process.Command(("ls",), cwd="/tmp"), _process.Remote("h"))


# -- pipe, with small real processes ------------------------------------------------------------


def py(code: str) -> _process.Command:
    return _process.Command((sys.executable, "-c", code))


def test_pipe_joins_two_processes() -> None:
    data = os.urandom(3 << 20)
    src = py(f"import sys; sys.stdout.buffer.write(bytes.fromhex('{data[:64].hex()}') * 49152)")
    sink = py("import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
    import hashlib

    want = hashlib.sha256(data[:64] * 49152).hexdigest()
    direct = _process.pipe(src, sink)
    assert direct.receiver.text.strip() == want and direct.nbytes is None
    chunks: list[int] = []
    pumped = _process.pipe(src, sink, on_chunk=lambda b: chunks.append(len(b)),
                           chunk_size=1 << 16)
    assert pumped.receiver.text.strip() == want
    assert pumped.nbytes == sum(chunks) == 64 * 49152 and max(chunks) <= 1 << 16


@pytest.mark.parametrize("pumped", [False, True])
def test_pipe_blames_the_sender_that_failed(pumped: bool) -> None:
    src = py("import sys; sys.stdout.write('half'); sys.stderr.write('no such snapshot'); "
             "sys.exit(3)")
    sink = py("import sys; d = sys.stdin.read(); sys.stderr.write('truncated stream'); "
              "sys.exit(0 if d == 'all' else 1)")
    with pytest.raises(CommandFailed) as ei:
        _process.pipe(src, sink, on_chunk=(lambda b: None) if pumped else None)
    assert ei.value.returncode == 3 and "no such snapshot" in ei.value.stderr


@pytest.mark.parametrize("pumped", [False, True])
def test_pipe_blames_the_receiver_that_failed(pumped: bool) -> None:
    src = py("import sys\nwhile True: sys.stdout.buffer.write(b'x' * 65536)")
    sink = py("import sys; sys.stdin.buffer.read(10); sys.stderr.write('disk full'); "
              "sys.exit(4)")
    with pytest.raises(CommandFailed) as ei:
        _process.pipe(src, sink, on_chunk=(lambda b: None) if pumped else None, timeout=60)
    assert ei.value.returncode == 4 and "disk full" in ei.value.stderr


def test_pipe_stops_both_when_interrupted_or_too_slow(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    src = py(f"import os, sys; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
             "while True: sys.stdout.buffer.write(b'x' * 65536)")
    sink = py(f"import os, sys; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
              "while sys.stdin.buffer.read(65536): pass")

    def stop(chunk: bytes) -> None:
        # Interrupted once both are running (the sink may still be starting its interpreter
        # when the first chunk arrives): then neither may outlive the pipe.
        deadline = time.monotonic() + 20
        while len(pids.read_text().split()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _process.pipe(src, sink, on_chunk=stop)
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2 and not any(_process.alive(p) for p in started)

    pids.unlink()
    t0 = time.monotonic()
    with pytest.raises(ServiceError, match="did not finish within 0.5 s"):
        _process.pipe(src, sink, timeout=0.5)
    assert time.monotonic() - t0 < 30
    started = [int(p) for p in pids.read_text().split()]
    assert not any(_process.alive(p) for p in started)


def eof_marker(path: Path) -> _process.Command:
    """Reads stdin to its end, then writes how many bytes it got to `path`: a receiver that
    would take a truncated stream for a complete one if it saw EOF."""
    return py(f"import sys; n = len(sys.stdin.buffer.read()); open({str(path)!r}, 'w')"
              ".write(str(n))")


def test_read_from_and_write_into_a_command(tmp_path: Path) -> None:
    got: list[bytes] = []
    res = _process.read_from(py("import sys; sys.stdout.buffer.write(b'ab' * 100000)"),
                             got.append, chunk_size=4096)
    assert b"".join(got) == b"ab" * 100000 and max(map(len, got)) <= 4096
    assert res.returncode == 0 and res.stdout == b""
    with pytest.raises(CommandFailed, match="gone"):
        _process.read_from(py("import sys; sys.stderr.write('gone'); sys.exit(2)"), got.append)

    marker = tmp_path / "n"
    _process.write_into(eof_marker(marker), (b"x" * 1000 for _ in range(300)))
    assert marker.read_text() == "300000"
    with pytest.raises(CommandFailed) as ei:  # a reader that quits early fails as itself
        _process.write_into(py("import sys; sys.stdin.read(1); sys.exit(5)"),
                            (b"x" * 65536 for _ in range(1000)))
    assert ei.value.returncode == 5


def test_an_interrupted_stream_never_reaches_its_end(tmp_path: Path) -> None:
    """Whatever stops a stream early, the receiver is killed before it could see EOF."""
    def broken() -> Iterator[bytes]:
        yield b"x" * 65536
        raise ConnectionError("download failed")

    marker = tmp_path / "n"
    with pytest.raises(ConnectionError):
        _process.write_into(eof_marker(marker), broken())
    with pytest.raises(KeyboardInterrupt):
        _process.pipe(py("import sys; sys.stdout.buffer.write(b'x' * (4 << 20))"),
                      eof_marker(marker), on_chunk=cut(1 << 20), chunk_size=1 << 16)
    time.sleep(0.2)
    assert not marker.exists()
    with pytest.raises(KeyboardInterrupt):  # and a sender read by Python is stopped too
        _process.read_from(py("import sys\nwhile True: sys.stdout.buffer.write(b'x' * 65536)"),
                           cut(1 << 20), timeout=60)


def cut(limit: int) -> Callable[[bytes], None]:
    """An `on_chunk` that interrupts a stream (as Ctrl-C would) once `limit` bytes passed."""
    seen = [0]

    def on_chunk(chunk: bytes) -> None:
        seen[0] += len(chunk)
        if seen[0] >= limit:
            raise KeyboardInterrupt

    return on_chunk
