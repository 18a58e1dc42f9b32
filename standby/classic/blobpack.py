"""Blobs in a backup session: each stored once per session, unchanged containers not rewritten.

A blob is named by its digest (SHA-256 of its uncompressed content, as `mail_item.blob_digest`)
and its bytes are stored as the store keeps them. Containers, per zip mode:

- `zipStore` (the default) and `zip` (`-z`, deflated): `blobs/<bucket>.zip`, the account's
  blobs spread over `K` buckets by digest (K grows with the account's size, a power of two, so a
  new message rewrites one bucket, not all);
- `noZip`: `blobs/<digest>` plain files.

Blobs more than one account of the session holds (a message delivered to several mailboxes)
are stored in the session's own `blobs/`, once, before the accounts; a digest stored already in
this session is only referenced. An account's `blobs/blobs.parquet` lists each of its blob files
(path in the mailbox folder, digest, container, size), which is what a restore reads.

No new bytes for unchanged data: a container whose member set equals the one in the same place
of the previous session is hard-linked from it (`noZip`: each file), so a second full backup of
unchanged data writes no blob bytes, while every session stays self-contained (deleting the
older one leaves the newer intact). Zip members carry a fixed time stamp, so equal content
gives equal zip bytes.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import pyarrow as pa

from standby.classic import dbdump
from standby.errors import FormatError, UsageError

ZIP_MODES = ("zipStore", "zip", "noZip")
MANIFEST = "blobs.parquet"
BUCKET_BYTES = 32 * 1024 * 1024
MAX_BUCKETS = 256
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # every member's time stamp: equal content, equal zip
_COMPRESSION = {"zipStore": zipfile.ZIP_STORED, "zip": zipfile.ZIP_DEFLATED}
_MANIFEST_SCHEMA = pa.schema([("path", pa.string()), ("digest", pa.string()),
                              ("container", pa.string()), ("size", pa.int64())])


def check_mode(mode: str) -> str:
    if mode not in ZIP_MODES:
        raise UsageError(f"zip mode {mode!r} is unknown", hint="zipStore, zip or noZip")
    return mode


def bucket_count(total_bytes: int) -> int:
    k = 1
    while k < MAX_BUCKETS and k * BUCKET_BYTES < total_bytes:
        k *= 2
    return k


def bucket_of(digest: str, k: int) -> int:
    """The bucket of a digest among `k` (a power of two), from its first 12 bits."""
    if k == 1:
        return 0
    head = base64.urlsafe_b64decode(digest[:4] + "=" * (-len(digest[:4]) % 4))
    return int.from_bytes(head[:2], "big") >> (16 - (k.bit_length() - 1))


@dataclass(frozen=True)
class BlobFile:
    """A blob file of a mailbox: its path in the mailbox folder, where it is, its digest."""

    path: str  # e.g. msg/0/257-3.msg
    source: str
    digest: str
    size: int


@dataclass(frozen=True)
class BlobRef:
    path: str
    digest: str
    container: str  # relative to the session folder
    size: int


@dataclass
class BlobStats:
    written: int = 0
    written_bytes: int = 0
    linked: int = 0
    linked_bytes: int = 0
    referenced: int = 0  # stored already in this session

    def add(self, other: BlobStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {"blobsWritten": self.written, "blobBytesWritten": self.written_bytes,
                "blobsLinked": self.linked, "blobBytesLinked": self.linked_bytes,
                "blobsShared": self.referenced}


def _link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            return False
        raise


def _zip_members(path: Path) -> tuple[set[str], int] | None:
    """(member names, compression) of an existing zip container, None if unusable."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (FileNotFoundError, zipfile.BadZipFile):
        return None
    comp = infos[0].compress_type if infos else zipfile.ZIP_STORED
    return {i.filename for i in infos}, comp


@dataclass
class SessionBlobs:
    """The blob containers of one session being written under `root`. Safe to use from
    threads: which container holds a digest is decided under a lock, before the container is
    written, so a digest two accounts hold is stored by one of them. A forked worker has a
    copy: the shared blobs are placed before the fork, and what an account stores is counted
    in the `BlobStats` its call returns, which the session adds to `stats`."""

    root: Path
    mode: str
    stats: BlobStats = field(default_factory=BlobStats)
    where: dict[str, str] = field(default_factory=dict)  # digest -> container
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        check_mode(self.mode)

    @staticmethod
    def _count(into: BlobStats, written: bool, members: Sequence[BlobFile]) -> None:
        n, size = len(members), sum(m.size for m in members)
        if written:
            into.written += n
            into.written_bytes += size
        else:
            into.linked += n
            into.linked_bytes += size

    # -- containers ------------------------------------------------------------------------
    def _pack(self, container: str, members: Sequence[BlobFile], prev: Path | None,
              into: BlobStats) -> None:
        dest = self.root / container
        dest.parent.mkdir(parents=True, exist_ok=True)
        if prev is not None:
            have = _zip_members(prev)
            if have is not None and have[0] == {m.digest for m in members} \
                    and have[1] == _COMPRESSION[self.mode] and _link(prev, dest):
                return self._count(into, False, members)
        tmp = dest.with_name(f".{dest.name}.tmp")
        with zipfile.ZipFile(tmp, "w", compression=_COMPRESSION[self.mode],
                             allowZip64=True) as z:
            for m in sorted(members, key=lambda m: m.digest):
                with open(m.source, "rb") as f:
                    data = f.read()
                info = zipfile.ZipInfo(m.digest, date_time=ZIP_EPOCH)
                info.compress_type = _COMPRESSION[self.mode]
                z.writestr(info, data)
        os.replace(tmp, dest)  # made durable with the whole session (syncfs)
        self._count(into, True, members)

    def _plain(self, container: str, m: BlobFile, prev: Path | None,
               into: BlobStats) -> None:
        dest = self.root / container
        dest.parent.mkdir(parents=True, exist_ok=True)
        if prev is not None and prev.is_file() and _link(prev, dest):
            return self._count(into, False, [m])
        shutil.copyfile(m.source, dest)
        self._count(into, True, [m])

    def _place(self, folder: str, members: Sequence[BlobFile],
               k: int) -> dict[str, list[BlobFile]]:
        """Container -> members for `members` stored under `folder` in `k` buckets, entered in
        `where` (the caller holds the lock)."""
        out: dict[str, list[BlobFile]] = {}
        for m in members:
            c = f"{folder}/{m.digest}" if self.mode == "noZip" else \
                f"{folder}/{bucket_of(m.digest, k):02x}.zip"
            out.setdefault(c, []).append(m)
            self.where[m.digest] = c
        return out

    def _write(self, placed: dict[str, list[BlobFile]], previous: Path | None) -> BlobStats:
        """Write each container, linking what equals the same place in `previous`."""
        counted = BlobStats()
        for c, ms in sorted(placed.items()):
            prev = previous / c if previous is not None else None
            if self.mode == "noZip":
                self._plain(c, ms[0], prev, counted)
            else:
                self._pack(c, ms, prev, counted)
        return counted

    def add(self, counted: BlobStats) -> None:
        """Count what a call stored into the session's `stats`."""
        with self._lock:
            self.stats.add(counted)

    # -- the session's shared blobs and each account's ---------------------------------------
    def store_shared(self, candidates: Iterable[tuple[str, Sequence[Path]]],
                     previous: Path | None = None) -> Callable[[], int]:
        """Take the blobs several accounts hold, each from the first of its copies that still
        exists, as the session's: their containers are chosen now (so accounts see them as
        stored) and written by the returned call, which may run beside the accounts'; it
        returns how many were stored."""
        members = []
        for digest, paths in candidates:
            for p in paths:
                try:
                    members.append(BlobFile("", str(p), digest, p.stat().st_size))
                    break
                except FileNotFoundError:
                    continue
        members.sort(key=lambda m: m.digest)
        with self._lock:
            placed = self._place("blobs", members, bucket_count(sum(m.size for m in members)))

        def write() -> int:
            self.add(self._write(placed, previous))
            return len(members)

        return write

    def store_account(self, account_rel: str, files: Sequence[BlobFile],
                      previous: Path | None = None) -> tuple[list[BlobRef], int, BlobStats]:
        """Store one account's blob files (`previous`: the session folder of its last full
        backup); returns its manifest rows, bucket count and what it stored (not yet in
        `stats`: the caller adds it)."""
        fresh: dict[str, BlobFile] = {}
        referenced = 0
        with self._lock:
            for f in files:
                if f.digest in self.where:
                    referenced += 1
                else:
                    fresh.setdefault(f.digest, f)
            members = sorted(fresh.values(), key=lambda m: m.digest)
            k = bucket_count(sum(m.size for m in members))
            placed = self._place(f"{account_rel}/blobs", members, k)
            refs = [BlobRef(f.path, f.digest, self.where[f.digest], f.size) for f in files]
        counted = self._write(placed, previous)
        counted.referenced = referenced
        return refs, k, counted


def write_manifest(folder: Path, refs: Sequence[BlobRef]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tbl = pa.Table.from_pydict({"path": [r.path for r in refs],
                                "digest": [r.digest for r in refs],
                                "container": [r.container for r in refs],
                                "size": [r.size for r in refs]}, schema=_MANIFEST_SCHEMA)
    dbdump.write_parquet(folder / MANIFEST, tbl)


def read_manifest(folder: Path) -> list[BlobRef]:
    p = folder / MANIFEST
    try:
        tbl = dbdump.read_parquet(p)
    except FileNotFoundError:
        return []
    except pa.ArrowInvalid as e:
        raise FormatError(f"{p} is not a readable blob list: {e}") from e
    d = tbl.to_pydict()
    return [BlobRef(*row) for row in zip(d["path"], d["digest"], d["container"], d["size"])]


class Containers:
    """Open zip containers of one restore, each read once (a session's shared containers serve
    many accounts; parsing their directory again for each would cost more than the copy)."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._open: dict[Path, tuple[zipfile.ZipFile, int, dict[str, tuple[int, int]]]] = {}

    def get(self, path: Path) -> tuple[int, dict[str, tuple[int, int]]]:
        """(fd of the file, member -> (offset of its data, size)) of a stored-zip container."""
        got = self._open.get(path)
        if got is None:
            if len(self._open) >= self.limit:
                self.close()
            try:
                z = zipfile.ZipFile(path)
            except FileNotFoundError:
                raise FormatError(f"blob container {path} is missing") from None
            except zipfile.BadZipFile as e:
                raise FormatError(f"blob container {path} is damaged: {e}") from e
            fd = os.open(path, os.O_RDONLY)
            members: dict[str, tuple[int, int]] = {}
            for info in z.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    members = {}
                    break
                # The data follows the local header: 30 bytes, the name, the extra field.
                head = os.pread(fd, 30, info.header_offset)
                if head[:4] != b"PK\x03\x04":
                    raise FormatError(f"blob container {path} is damaged at {info.filename}")
                n, x = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30],
                                                                             "little")
                members[info.filename] = (info.header_offset + 30 + n + x, info.file_size)
            got = self._open[path] = (z, fd, members)
        return got[1], got[2]

    def zip(self, path: Path) -> zipfile.ZipFile:
        self.get(path)
        return self._open[path][0]

    def close(self) -> None:
        for z, fd, _m in self._open.values():
            z.close()
            os.close(fd)
        self._open.clear()


def _copy_range(src: int, offset: int, size: int, dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done = 0
        while done < size:
            n = os.copy_file_range(src, fd, size - done, offset + done)
            if n == 0:
                raise FormatError(f"a blob container ends early ({dest.name})")
            done += n
    finally:
        os.close(fd)


def extract(session_root: Path, refs: Sequence[BlobRef], dest_root: Path,
            containers: Containers | None = None) -> tuple[int, int]:
    """Write each blob of `refs` at `dest_root/<path>`; returns (files, bytes). Members of an
    uncompressed zip are copied in the kernel, straight from their offset in the container."""
    cache = containers or Containers()
    by_container: dict[str, list[BlobRef]] = {}
    for r in refs:
        by_container.setdefault(r.container, []).append(r)
    made: set[Path] = set()
    n = nbytes = 0

    def target(r: BlobRef) -> Path:
        p = dest_root / r.path
        if p.parent not in made:
            p.parent.mkdir(parents=True, exist_ok=True)
            made.add(p.parent)
        return p

    try:
        for container, rs in by_container.items():
            src = session_root / container
            if not container.endswith(".zip"):
                for r in rs:
                    shutil.copyfile(src, target(r))
                    n += 1
                    nbytes += r.size
                continue
            fd, members = cache.get(src)
            for r in rs:
                if members:
                    try:
                        off, size = members[r.digest]
                    except KeyError:
                        raise FormatError(f"{src} does not hold blob {r.digest}") from None
                    _copy_range(fd, off, size, target(r))
                else:  # a deflated container (-z)
                    try:
                        data = cache.zip(src).read(r.digest)
                    except KeyError:
                        raise FormatError(f"{src} does not hold blob {r.digest}") from None
                    size = len(data)
                    with open(target(r), "wb") as f:
                        f.write(data)
                n += 1
                nbytes += size
    finally:
        if containers is None:
            cache.close()
    return n, nbytes
