"""How far a redolog volume goes: its logs by the sequence in their headers, the end of their
last complete record, and the commit time of the last transaction they hold.

`complete_length` is the one test of "whole records" the streamer (never a torn record shipped)
and the pull (never a torn record assembled) share: it decodes every record of a byte range
that starts at a record boundary and says where the last whole one ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from standby.errors import FormatError
from standby.redolog import header as fileheader
from standby.redolog.codec import DecodeError, Truncated
from standby.redolog.files import redolog_dir_logs
from standby.redolog.header import HEADER_SIZE
from standby.redolog.ops import CommitTxn
from standby.redolog.reader import scan
from standby.redolog.record import MARKER, decode_at


def complete_length(buf: bytes, offset: int) -> int:
    """How many bytes at the start of `buf` (the log's bytes from file offset `offset`, a
    record boundary) are whole records — the header too when `offset` is 0. A record that does
    not parse and is followed by another marker is skipped over, as the reader does; a record
    the buffer ends inside is left for later."""
    pos = 0
    if offset == 0:
        if len(buf) < HEADER_SIZE:
            return 0
        pos = HEADER_SIZE
    done = pos
    while pos < len(buf):
        try:
            _rec, nxt = decode_at(buf, pos)
        except Truncated:
            break
        except DecodeError:
            nxt = buf.find(MARKER, pos + 1)
            if nxt < 0:
                break
        pos = done = nxt
    return done


def header_seq(path: Path) -> int | None:
    """The sequence in a log's header; None if the file is missing or shorter than one."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_SIZE)
    except FileNotFoundError:
        return None
    if len(head) < HEADER_SIZE:
        return None
    return fileheader.decode(head, path=str(path)).sequence


def logs_by_seq(log_dir: Path) -> list[tuple[int, Path]]:
    """(sequence from the header, path) of every log on the volume, in sequence order."""
    out = []
    for lf in redolog_dir_logs(log_dir):
        try:
            seq = header_seq(lf.path)
        except FormatError:
            continue
        if seq is not None:
            out.append((seq, lf.path))
    return sorted(out)


@dataclass(frozen=True)
class Reach:
    """(seq, offset) just past the volume's last complete record, and the commit time of the
    last transaction in it (0: none)."""

    seq: int
    offset: int
    last_commit_ms: int

    @property
    def position(self) -> tuple[int, int]:
        return (self.seq, self.offset)

    def __str__(self) -> str:
        return f"seq {self.seq} offset {self.offset}"


def reach(log_dir: Path) -> Reach:
    last_commit = 0
    seq, end = -1, 0
    for s, path in logs_by_seq(log_dir):
        with scan(path) as sc:
            for rec in sc:
                if isinstance(rec.op, CommitTxn):
                    last_commit = max(last_commit, rec.tstamp)
            seq, end = s, sc.good_end
    return Reach(seq, end, last_commit)
