"""Which redo records a replay runs, with Zimbra's `PlaybackUtil`/`RedoPlayer` semantics.

File selection (`select_files`): by default the archived logs whose name's sequence is within
[fromSeq, toSeq], in sequence order, then `redo.log` if its header's sequence is (the listing is
`files.redolog_dir_logs`); with explicit `--logfiles`, exactly those files in that order, a
directory among them standing for its logs as that listing gives them. A file is skipped when its
header shows no op in the time range (first op after `toTime`, or last op before `fromTime` on a
closed file).

Op selection (`Player`): one player scans all files, so transactions pending at the end of one
file carry into the next (a rollover re-logs active transactions). An op runs when its CommitTxn
is read; uncommitted and aborted ops never run; a Commit or Abort without its change record is an
orphan and ignored. `fromTime` tests the change record's time, `toTime` the commit's
(`commit < toTime + 1`). The mailbox filter passes ops of that mailbox, ops of mailbox -1, and a
StoreIncomingBlob whose recipient list holds it.

Beyond Zimbra: every committed StoreIncomingBlob is handed to `on_incoming`, whatever the
filters, so a LINK delivery inside the range can find its blob when the blob was stored before
`fromTime`. For the same reason the files just before the range — skipped for ending before
`fromTime`, or below `fromSeq` when a `fromTime` is given too (a replay onto a snapshot set) —
are still read, "for blobs only", when a later file is: the last of them always, and every one
whose last op is within `SHARED_DELIVERY_WINDOW_MS` of `fromTime` (rollovers can fall inside a
shared delivery, several under load). None of their ops is selected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from standby.errors import NotFound, UsageError
from standby.redolog import files
from standby.redolog import header as fileheader
from standby.redolog.header import FileHeader
from standby.redolog.ops import AbortTxn, CommitTxn, StoreIncomingBlob
from standby.redolog.reader import Problem, scan
from standby.redolog.record import MAILBOX_ALL, MAILBOX_UNKNOWN, Record


@dataclass(frozen=True)
class Selection:
    from_time: int | None = None
    to_time: int | None = None
    from_seq: int | None = None
    to_seq: int | None = None
    mailbox_ids: frozenset[int] | None = None

    def check(self) -> None:
        if (self.from_time is not None and self.to_time is not None
                and self.from_time > self.to_time):
            raise UsageError("Error: fromTime later than toTime")
        if (self.from_seq is not None and self.to_seq is not None
                and self.from_seq > self.to_seq):
            raise UsageError("Error: fromSeq greater than toSeq")


SHARED_DELIVERY_WINDOW_MS = 300_000
"""How long before `fromTime` a replay still reads logs for the blobs of shared deliveries (a
StoreIncomingBlob is logged once, before its recipients' LINK CreateMessages)."""


@dataclass(frozen=True)
class LogFile:
    path: Path
    seq: int
    header: FileHeader | None
    blobs_only: bool = False  # read for shared-delivery blobs; none of its ops is selected


def select_files(redolog_dir: Path | None, sel: Selection,
                 logfiles: list[Path] | None = None) -> tuple[list[LogFile], list[str]]:
    """The files to replay, in order, and a note for each file skipped by its header."""
    notes: list[str] = []
    chosen: list[LogFile] = []
    if logfiles:
        for p in logfiles:
            if p.is_dir():  # a redolog directory: its archive, then its current log
                chosen.extend(_dir_logs(p, -(2 ** 63), 2 ** 63))
            elif p.is_file():
                h = _read_header(p)
                chosen.append(LogFile(p, h.sequence if h else files.seq_of(p.name), h))
            else:
                raise NotFound(f"--logfiles: {p} does not exist")
    else:
        if redolog_dir is None or not redolog_dir.is_dir():
            raise NotFound(f"redo log directory {redolog_dir} does not exist")
        lo = sel.from_seq if sel.from_seq is not None else -(2 ** 63)
        hi = sel.to_seq if sel.to_seq is not None else 2 ** 63
        if sel.from_seq is not None and sel.from_time is not None:
            chosen.extend(replace(lf, blobs_only=True)
                          for lf in _dir_logs(redolog_dir, -(2 ** 63), lo - 1))
        chosen.extend(_dir_logs(redolog_dir, lo, hi))
    out: list[LogFile] = []
    before: list[tuple[LogFile, int | None]] = []  # files before the range, and their notes
    for lf in chosen:
        h = lf.header
        if h is not None and sel.to_time is not None and h.first_op_tstamp > sel.to_time:
            if not lf.blobs_only:
                notes.append(f"{lf.path.name}: first op after toTime, skipped")
            continue
        if lf.blobs_only:
            before.append((lf, None))
            continue
        if (h is not None and sel.from_time is not None and not h.open
                and 0 < h.last_op_tstamp < sel.from_time):
            before.append((lf, len(notes)))
            notes.append(f"{lf.path.name}: has no operation in the requested time range")
            continue
        if before:
            out.extend(_for_blobs(before, sel.from_time, notes))
            before = []
        out.append(lf)
    return out, notes


def _for_blobs(before: list[tuple[LogFile, int | None]], from_time: int | None,
               notes: list[str]) -> list[LogFile]:
    """Of the files before a replay's range, those read for shared-delivery blobs: the last one,
    and each one whose last op is within the window before `from_time`."""
    since = (from_time or 0) - SHARED_DELIVERY_WINDOW_MS
    out = []
    for i, (lf, note) in enumerate(before):
        h = lf.header
        if i == len(before) - 1 or h is None or h.open or h.last_op_tstamp >= since:
            out.append(replace(lf, blobs_only=True))
            if note is not None:
                notes[note] = (f"{lf.path.name}: ops before fromTime, read for "
                               "shared-delivery blobs")
    return out


def _dir_logs(redolog_dir: Path, lo: int, hi: int) -> list[LogFile]:
    """The logs of a redolog directory with sequences in [lo, hi]; the current log by its
    header's sequence, and only once it holds a header."""
    out = []
    for lf in files.redolog_dir_logs(redolog_dir):
        if lf.path.name != files.CURRENT:
            if lo <= lf.seq <= hi:
                out.append(LogFile(lf.path, lf.seq, _read_header(lf.path)))
        elif os.path.getsize(lf.path) >= fileheader.HEADER_SIZE:
            h = _read_header(lf.path)
            if h is not None and lo <= h.sequence <= hi:
                out.append(LogFile(lf.path, h.sequence, h))
    return out


def _read_header(p: Path) -> FileHeader | None:
    with open(p, "rb") as f:
        raw = f.read(fileheader.HEADER_SIZE)
    return fileheader.decode(raw, path=str(p))


@dataclass
class PlayStats:
    files: int = 0
    records: int = 0
    committed: int = 0
    selected: int = 0
    aborted: int = 0
    orphans: int = 0
    uncommitted: int = 0
    filtered_time: int = 0
    filtered_mailbox: int = 0
    problems: list[tuple[str, Problem]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["problems"] = [f"{name}: {p}" for name, p in self.problems]
        return d


class Player:
    """Turns a sequence of log files into the committed ops to run, in commit order."""

    def __init__(self, sel: Selection,
                 on_incoming: Callable[[Record, Path], None] | None = None,
                 *, spans: bool = False) -> None:
        sel.check()
        self.spans = spans
        self.sel = sel
        self.on_incoming = on_incoming
        self.stats = PlayStats()
        self.pending: dict[tuple[int, int], Record] = {}
        self._pending_file: dict[tuple[int, int], Path] = {}

    def _passes(self, op_rec: Record, commit: Record) -> bool:
        sel = self.sel
        if sel.from_time is None and sel.to_time is None and sel.mailbox_ids is None:
            return True
        if sel.from_time is not None and op_rec.tstamp < sel.from_time:
            self.stats.filtered_time += 1
            return False
        if sel.to_time is not None and commit.tstamp >= sel.to_time + 1:
            self.stats.filtered_time += 1
            return False
        ids = sel.mailbox_ids
        if ids is not None:
            m = op_rec.mailbox_id
            if isinstance(op_rec.op, StoreIncomingBlob):
                if not op_rec.op.mailbox_ids or not any(x in ids for x in
                                                        op_rec.op.mailbox_ids):
                    self.stats.filtered_mailbox += 1
                    return False
            elif m not in ids and m not in (MAILBOX_ALL, MAILBOX_UNKNOWN):
                self.stats.filtered_mailbox += 1
                return False
        return True

    def play_file(self, path: Path, *, blobs_only: bool = False) -> Iterator[tuple[Record, Path]]:
        """Yield (op record, file it was read from) for each selected committed op; with
        `blobs_only`, none (its StoreIncomingBlobs still go to `on_incoming`)."""
        st = self.stats
        st.files += 1
        pending, pfile = self.pending, self._pending_file
        commit_code, abort_code = CommitTxn.OPCODE, AbortTxn.OPCODE
        # Counted in locals (this loop runs per record) and added up however the loop ends.
        records = committed = selected = orphans = aborted = 0
        try:
            with scan(path, spans=self.spans) as sc:
                for rec in sc:
                    records += 1
                    op = rec.op
                    code = op.OPCODE
                    if code == commit_code:
                        key = (rec.txn_time, rec.txn_counter)
                        start = pending.pop(key, None)
                        src = pfile.pop(key, path)
                        if start is None:
                            orphans += 1
                            continue
                        committed += 1
                        if self.on_incoming and isinstance(start.op, StoreIncomingBlob):
                            self.on_incoming(start, src)
                        if not blobs_only and self._passes(start, rec):
                            selected += 1
                            yield start, src
                    elif code == abort_code:
                        key = (rec.txn_time, rec.txn_counter)
                        if pending.pop(key, None) is None:
                            orphans += 1
                        else:
                            aborted += 1
                        pfile.pop(key, None)
                    elif op.is_start_marker:
                        key = (rec.txn_time, rec.txn_counter)
                        pending[key] = rec
                        pfile[key] = path
                for prob in sc.problems:
                    st.problems.append((path.name, prob))
        finally:
            st.records += records
            st.committed += committed
            st.selected += selected
            st.orphans += orphans
            st.aborted += aborted

    def play(self, logs: list[LogFile]) -> Iterator[tuple[Record, Path]]:
        for lf in logs:
            yield from self.play_file(lf.path, blobs_only=lf.blobs_only)
        self.stats.uncommitted = len(self.pending)
