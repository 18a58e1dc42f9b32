"""Tar streams of dir snapshots: full + incremental applied give the newer snapshot exactly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standby.errors import IntegrityError
from standby.transfer import tarstream

names = st.sampled_from(["a", "b", "c", "d.ibd", "msg", "ü x"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
trees = st.dictionaries(paths, st.one_of(st.binary(max_size=3000), st.just(None),
                                         st.sampled_from(["->a", "->../b"])), max_size=12)


def build(root: Path, tree: dict[str, bytes | str | None], stamp: int) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    for rel, content in sorted(tree.items()):
        p = root / rel
        if any((root / q).is_symlink() for q in Path(rel).parents if str(q) != "."):
            continue  # under a symlink: it would land outside the tree
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if content is None:
                p.mkdir(exist_ok=True)
            elif isinstance(content, str):
                os.symlink(content[2:], p)
            else:
                p.write_bytes(content)
                os.utime(p, ns=(stamp, stamp))
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # a path under what is a file here: not part of this tree


def files_of(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for e in tarstream.scan(root).entries:
        p = root / e.path
        out[e.path] = (e.type + ":" + os.readlink(p)) if e.type == "l" else (
            p.read_bytes() if e.type == "f" else "d")
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=trees, b=trees, same_stamp=st.booleans())
def test_full_then_incremental_gives_the_newer_tree(tmp_path: Path, a: dict, b: dict,
                                                     same_stamp: bool) -> None:
    sa, sb, dest = tmp_path / "a", tmp_path / "b", tmp_path / "dest"
    build(sa, a, 1_000_000_000_000_000_000)
    build(sb, b, 1_000_000_000_000_000_000 if same_stamp else 2_000_000_000_000_000_000)
    if dest.exists():
        shutil.rmtree(dest)
    ia = tarstream.scan(sa)
    send_a, ia = tarstream.diff(ia, None)
    tarstream.apply(dest, tarstream.tar_chunks(sa, send_a), ia, incremental=False)
    assert files_of(dest) == files_of(sa)
    send_b, ib = tarstream.diff(tarstream.scan(sb), ia)
    tarstream.apply(dest, tarstream.tar_chunks(sb, send_b), ib, incremental=True)
    if same_stamp:
        # rsync's quick check: a file of the same size and time is not sent again
        same = {p for p, e in ib.by_path().items()
                if p in ia.by_path() and ia.by_path()[p].same(e) and e.type == "f"}
        assert not same & {e.path for e in send_b if e.type == "f"}
        for p in same:
            assert (dest / p).read_bytes() == (sa / p).read_bytes()
    else:
        assert files_of(dest) == files_of(sb)
        assert tarstream.check_applied(dest, ib) == []
    ib2 = tarstream.Index.from_json(ib.to_json(), where="x")
    assert ib2 == ib


def test_runtime_files_do_not_travel_and_escapes_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / ".standby-snapshot").write_text("{}")
    (src / ".standby-store.lock").write_text("pid 1")
    (src / "data" / "standby-owner.pid").write_text("1")
    (src / "data" / "ibdata1").write_bytes(b"x" * 5000)
    idx = tarstream.scan(src)
    assert [e.path for e in idx.entries] == ["data", "data/ibdata1"]
    with pytest.raises(IntegrityError, match="outside"):
        tarstream.remove_paths(tmp_path / "dest", ["../src"])
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("../evil")
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    with pytest.raises(IntegrityError, match="does not extract"):
        tarstream.apply(tmp_path / "dest", [buf.getvalue()], tarstream.Index(()),
                        incremental=False)
    assert not (tmp_path / "evil").exists()


@settings(max_examples=300)
@given(path=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/"),
                    min_size=1, max_size=60).map(lambda p: p + "/x"),
       kind=st.sampled_from(["f", "d", "l"]), mode=st.integers(0, 0o7777),
       size=st.integers(0, 10**12), mtime=st.integers(0, 10**19), link=st.text(max_size=120),
       uid=st.integers(0, 70000), gid=st.integers(0, 70000))
def test_tar_headers_are_what_tarfile_writes(path: str, kind: str, mode: int, size: int,
                                             mtime: int, link: str, uid: int, gid: int) -> None:
    import tarfile

    e = tarstream.Entry(path, kind, mode, size if kind == "f" else 0, mtime,
                        link if kind == "l" else "", uid, gid)
    ti = tarfile.TarInfo(e.path)
    ti.mode, ti.mtime, ti.uid, ti.gid, ti.linkname = mode, mtime // 10**9, uid, gid, e.link
    ti.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE}[kind]
    ti.size = e.size
    assert tarstream.header(e) == ti.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8",
                                           errors="surrogateescape")
