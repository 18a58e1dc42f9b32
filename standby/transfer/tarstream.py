"""Tar streams of `dir` snapshots: full, or incremental as changed files plus removals.

A `dir` snapshot is a folder (standby/snapshot/dir.py). Shipping it sends

- its **index**: every directory, regular file and symlink with its type, mode, size, mtime
  (ns) and link target, sorted by path (what the next incremental compares with; kept at the
  target beside the stream, so an incremental needs the parent's index, not the parent's folder,
  which local retention may already have removed);
- its **stream**: a (GNU) tar of the entries that are new or changed since the parent's
  index (all of them for a full stream), every directory included so modes and times follow,
  and, in the index, the paths to remove first: gone since the parent, or of another type now.

"Changed" is rsync's quick check: type, size, mtime or mode differ (the dir backend keeps
mtimes when it copies). The runtime files that never travel (the snapshot's marker, the store's
volumes lock, a MariaDB pid file) are left out, as `FolderCopy` did.

Applying (`apply`) removes first, then extracts with tarfile's `tar` filter, which refuses any
member that would land outside the destination; `scan` of the result equals the index in paths,
types and sizes (what `pull` checks before it swaps a staged volume into place).

Invariant (Hypothesis over random trees and changes in tests/test_transfer_tar.py): applying the
full stream of A, then the incremental of B from A, gives a folder whose files are byte for byte
those of B.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from standby.errors import FormatError, IntegrityError
from standby.snapshot.dir import MARKER, SKIP_NAMES
from standby.store.site import LOCK_NAME

INDEX_FORMAT = "standby-dir-index"
ROOT_EXCLUDES = frozenset({MARKER, LOCK_NAME})
CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class Entry:
    path: str  # relative, "/"-separated
    type: str  # d | f | l
    mode: int
    size: int
    mtime_ns: int
    link: str = ""
    uid: int = 0
    gid: int = 0

    def same(self, other: Entry) -> bool:
        return (self.type, self.size, self.mtime_ns, self.mode, self.link) == (
            other.type, other.size, other.mtime_ns, other.mode, other.link)

    def as_list(self) -> list[Any]:
        return [self.path, self.type, self.mode, self.size, self.mtime_ns, self.link, self.uid,
                self.gid]


@dataclass(frozen=True)
class Index:
    entries: tuple[Entry, ...]
    removed: tuple[str, ...] = ()  # removed first when this snapshot is applied incrementally

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}

    @property
    def file_bytes(self) -> int:
        return sum(e.size for e in self.entries if e.type == "f")

    def to_json(self) -> bytes:
        return json.dumps({"format": INDEX_FORMAT, "version": 1,
                           "entries": [e.as_list() for e in self.entries],
                           "removed": list(self.removed)}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str) -> Index:
        try:
            d = json.loads(raw)
            if d.get("format") != INDEX_FORMAT:
                raise FormatError(f"{where} is not a dir snapshot index")
            return cls(tuple(Entry(str(p), str(t), int(m), int(s), int(mt), str(ln), int(u),
                                   int(g))
                             for p, t, m, s, mt, ln, u, g in d["entries"]),
                       tuple(str(p) for p in d.get("removed", [])))
        except (ValueError, KeyError, TypeError) as e:
            raise FormatError(f"{where} is not a valid dir snapshot index: {e}") from e


def scan(root: Path) -> Index:
    """The index of the folder `root` (directories, regular files, symlinks), sorted by path."""
    out: list[Entry] = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(dirpath, root)
        base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in sorted([*dirs, *files]):
            if name in SKIP_NAMES or (not base and name in ROOT_EXCLUDES):
                continue
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            mode, own = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                out.append(Entry(base + name, "l", mode, 0, st.st_mtime_ns, os.readlink(p),
                                 *own))
            elif stat.S_ISDIR(st.st_mode):
                out.append(Entry(base + name, "d", mode, 0, st.st_mtime_ns, "", *own))
            elif stat.S_ISREG(st.st_mode):
                out.append(Entry(base + name, "f", mode, st.st_size, st.st_mtime_ns, "", *own))
    return Index(tuple(sorted(out, key=lambda e: e.path)))


def diff(index: Index, parent: Index | None) -> tuple[list[Entry], Index]:
    """What the stream of `index` carries against `parent` (everything for a full stream), and
    `index` with the paths an incremental removes first."""
    if parent is None:
        return list(index.entries), Index(index.entries)
    old = parent.by_path()
    new = index.by_path()
    removed = sorted(p for p, e in old.items()
                     if p not in new or new[p].type != e.type or (e.type == "l"
                                                                   and not new[p].same(e)))
    send = [e for e in index.entries
            if e.type == "d" or e.path not in old or not old[e.path].same(e)]
    return send, Index(index.entries, tuple(removed))


_TYPEFLAG = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "f": tarfile.REGTYPE}
_OCTAL_7, _OCTAL_11 = 8**7, 8**11


def header(e: Entry) -> bytes:
    """The tar header of `e`: GNU format, whole-second mtime (the index keeps the exact time,
    which is what incrementals compare; a pax header per file for the fraction would cost more
    than the file's own header). Byte for byte what tarfile writes, built directly in the
    common case (short names, ordinary numbers) because tarfile spends more time per header
    than reading a small blob."""
    name = e.path + ("/" if e.type == "d" else "")
    raw, link = os.fsencode(name), os.fsencode(e.link)
    mtime = e.mtime_ns // 1_000_000_000
    if (len(raw) > 100 or len(link) > 100 or not 0 <= e.size < _OCTAL_11 or
            not 0 <= mtime < _OCTAL_11 or not (0 <= e.uid < _OCTAL_7 and 0 <= e.gid < _OCTAL_7)):
        ti = tarfile.TarInfo(e.path)
        ti.mode, ti.mtime, ti.uid, ti.gid = e.mode, mtime, e.uid, e.gid
        ti.type, ti.linkname = _TYPEFLAG[e.type], e.link
        ti.size = e.size if e.type == "f" else 0
        return ti.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8",
                        errors="surrogateescape")
    size = e.size if e.type == "f" else 0
    head = b"".join((raw.ljust(100, b"\0"), b"%07o\0" % (e.mode & 0o7777), b"%07o\0" % e.uid,
                     b"%07o\0" % e.gid, b"%011o\0" % size, b"%011o\0" % mtime, b" " * 8,
                     _TYPEFLAG[e.type], link.ljust(100, b"\0"), tarfile.GNU_MAGIC)
                    ).ljust(tarfile.BLOCKSIZE, b"\0")
    return head[:148] + b"%06o\0" % sum(head) + head[155:]


def tar_chunks(root: Path, entries: Iterable[Entry]) -> Iterator[bytes]:
    """A tar of `entries` of the folder `root`, as chunks of about `CHUNK` bytes. A file
    whose size changed while it was read (not a snapshot, then) is refused."""
    pending: list[bytes] = []
    size = 0
    for e in entries:
        pending.append(header(e))
        size += len(pending[-1])
        if e.type == "f":
            left = e.size
            with open(root / e.path, "rb") as f:
                while left:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        raise IntegrityError(f"{root / e.path} shrank while it was read: "
                                             f"{root} is not a snapshot",
                                             hint="ship snapshots, not volumes")
                    left -= len(data)
                    pending.append(data)
                    size += len(data)
                    if size >= CHUNK:
                        yield b"".join(pending)
                        pending, size = [], 0
            pad = -e.size % BLOCK
            if pad:
                pending.append(b"\0" * pad)
                size += pad
        if size >= CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    size += 2 * BLOCK
    pending.append(b"\0" * (2 * BLOCK + (-size % tarfile.RECORDSIZE)))
    yield b"".join(pending)


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (for tarfile's stream mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._it))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]  # a view: no copy of what is left
        return n


def remove_paths(dest: Path, paths: Iterable[str]) -> None:
    """Remove each of `paths` under `dest` (a folder with all it holds); missing ones are fine."""
    for rel in paths:
        p = dest / rel
        if not _inside(dest, p):
            raise IntegrityError(f"a removal names {rel!r}, outside the volume")
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
        elif p.is_dir():
            shutil.rmtree(p)


def _inside(root: Path, p: Path) -> bool:
    r = os.path.abspath(root)
    return os.path.commonpath([r, os.path.abspath(p)]) == r and os.path.abspath(p) != r


def apply(dest: Path, chunks: Iterable[bytes], index: Index, *, incremental: bool) -> None:
    """Apply one snapshot's stream to the folder `dest`: the removals of an incremental, then
    every member (refusing any outside `dest`), then the directories' modes and times."""
    if incremental:
        remove_paths(dest, index.removed)
    dest.mkdir(parents=True, exist_ok=True)
    dirs: list[tarfile.TarInfo] = []
    stream: IO[bytes] = io.BufferedReader(ChunkReader(chunks), buffer_size=CHUNK)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.isdir():
                    dirs.append(member)
                tar.extract(member, dest, filter="tar", numeric_owner=True)
    except (tarfile.TarError, OSError) as e:
        raise IntegrityError(f"the stream for {dest} does not extract: {e}",
                             hint="verify the target (`standby verify`)") from e
    # tarfile sets a directory's time before its files land in it: set them again, last.
    for member in sorted(dirs, key=lambda m: m.name, reverse=True):
        p = dest / member.name
        os.utime(p, (member.mtime, member.mtime), follow_symlinks=False)


def check_applied(dest: Path, index: Index) -> list[str]:
    """How the folder `dest` differs from `index` (paths, types, sizes, link targets); empty
    when it matches."""
    have = scan(dest).by_path()
    want = index.by_path()
    problems = [f"{p} is missing" for p in want if p not in have]
    problems += [f"{p} should not be there" for p in have if p not in want]
    for p, e in want.items():
        h = have.get(p)
        if h is not None and (h.type, h.size, h.link) != (e.type, e.size, e.link):
            problems.append(f"{p} is a {h.type} of {h.size} bytes, not a {e.type} of "
                            f"{e.size} bytes")
    return problems
