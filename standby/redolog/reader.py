"""Fast, robust reading of redo log files (Zimbra `FileLogReader`, with better reporting).

`scan(path)` maps the file, parses the header and yields records. Problems never raise out of the
iteration; they are collected in `Scan.problems`:

- a record that does not parse: resync at the next `ZMREDO` marker, report the skipped bytes;
- an unknown opcode: skip to the next marker, with a warning (its layout is unknown);
- a record of a newer version than 1.42: skip to the next marker, reported as such;
- a torn tail (the file ends inside a record, or junk after the last good record with no further
  marker): reported with its offset, iteration ends. `Scan.good_end` is the offset just past the
  last good record, which crash recovery truncates to.

Header problems (short file, bad magic, newer version) raise FormatError/UnsupportedVersion from
`scan()` itself, because nothing in such a file can be trusted.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as struct_error

from standby.redolog import header as fileheader
from standby.redolog import ops as _ops  # noqa: F401  (registers the op classes)
from standby.redolog.codec import DecodeError, SpanMap, Truncated
from standby.redolog.header import HEADER_SIZE, FileHeader
from standby.redolog.record import MARKER, NewerVersion, Record, UnknownOpcode, decode_at


@dataclass(frozen=True)
class Problem:
    offset: int
    kind: str  # "bad-record" | "unknown-opcode" | "newer-version" | "torn-tail"
    skipped: int  # bytes skipped from `offset`
    message: str

    def __str__(self) -> str:
        return f"offset {self.offset}: {self.kind}: {self.message} ({self.skipped} bytes skipped)"


@dataclass
class Scan:
    """Iterate a file's records; inspect `problems` and `good_end` after the iteration."""

    path: Path
    header: FileHeader
    size: int
    problems: list[Problem] = field(default_factory=list)
    good_end: int = HEADER_SIZE
    records_read: int = 0
    _buf: bytes | mmap.mmap | None = None

    def __iter__(self) -> Iterator[Record]:
        buf = self._buf
        if buf is None:
            return
        yield from _iterate(self, buf, HEADER_SIZE, self.size)

    def records(self) -> list[Record]:
        return list(self)

    @property
    def ok(self) -> bool:
        return not self.problems

    def close(self) -> None:
        if isinstance(self._buf, mmap.mmap):
            try:
                self._buf.close()
            except BufferError:
                pass  # a memoryview of it is still alive; the GC will unmap it
        self._buf = None

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan(path: str | os.PathLike[str], *, size: int | None = None, spans: bool = False) -> Scan:
    """Open `path` for reading records up to its size now (or `size`).

    With `spans`, blobs decode as `codec.BlobSpan`s (valid while the scan is open) instead of
    copies of their bytes."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY)
    except FileNotFoundError as e:
        from standby.errors import NotFound

        raise NotFound(f"redo log {p} does not exist") from e
    try:
        st_size = os.fstat(fd).st_size
        n = st_size if size is None else min(size, st_size)
        if n < HEADER_SIZE:
            head = os.pread(fd, HEADER_SIZE, 0)
            fileheader.decode(head, path=str(p))  # raises FormatError: too short
        kind = SpanMap if spans else mmap.mmap
        buf: bytes | mmap.mmap = kind(fd, n, prot=mmap.PROT_READ) if n else b""
        if isinstance(buf, mmap.mmap):
            # Records are read front to back: ask for aggressive read-ahead, so a log that is
            # not in the page cache streams from disk instead of faulting in page by page.
            with contextlib.suppress(OSError, AttributeError):
                buf.madvise(mmap.MADV_SEQUENTIAL)
                buf.madvise(mmap.MADV_WILLNEED)
    finally:
        os.close(fd)
    hdr = fileheader.decode(buf[:HEADER_SIZE], path=str(p))
    return Scan(path=p, header=hdr, size=n, _buf=buf)


def scan_bytes(data: bytes, *, name: str = "<bytes>") -> Scan:
    hdr = fileheader.decode(data[:HEADER_SIZE], path=name)
    return Scan(path=Path(name), header=hdr, size=len(data), _buf=data)


def _iterate(sc: Scan, buf: bytes | mmap.mmap, pos: int, end: int) -> Iterator[Record]:
    find = buf.find
    while pos < end:
        try:
            rec, nxt = decode_at(buf, pos)  # type: ignore[arg-type]
        except Truncated as e:
            nxt_marker = find(MARKER, pos + 1, end)
            if nxt_marker < 0:
                sc.problems.append(Problem(pos, "torn-tail", end - pos,
                                           f"file ends inside a record ({e})"))
                return
            sc.problems.append(Problem(pos, "bad-record", nxt_marker - pos, str(e)))
            pos = nxt_marker
            continue
        except (UnknownOpcode, NewerVersion, DecodeError) as e:
            kind = ("unknown-opcode" if isinstance(e, UnknownOpcode)
                    else "newer-version" if isinstance(e, NewerVersion) else "bad-record")
            nxt_marker = find(MARKER, pos + 1, end)
            if nxt_marker < 0:
                sc.problems.append(Problem(pos, "torn-tail" if kind == "bad-record" else kind,
                                           end - pos, f"{e}; no further record to end of file"))
                return
            sc.problems.append(Problem(pos, kind, nxt_marker - pos, str(e)))
            pos = nxt_marker
            continue
        except (ValueError, OverflowError, struct_error) as e:  # defensive: odd field values
            nxt_marker = find(MARKER, pos + 1, end)
            skipped = (nxt_marker if nxt_marker >= 0 else end) - pos
            sc.problems.append(Problem(pos, "bad-record", skipped, f"undecodable: {e}"))
            if nxt_marker < 0:
                return
            pos = nxt_marker
            continue
        sc.records_read += 1
        sc.good_end = nxt
        pos = nxt
        yield rec



def read_all(path: str | os.PathLike[str]) -> tuple[FileHeader, list[Record], list[Problem]]:
    """Convenience: header, every record and the problems of one file."""
    with scan(path) as sc:
        recs = list(sc)
        return sc.header, recs, list(sc.problems)
