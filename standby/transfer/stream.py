"""`standby stream`: the redo log shipped as the store appends to it, segment by segment.

The redo log is append-only between rollovers and is the store's durability point, so the
streamer follows the log file of the sequence it is at (`redo.log`, or the archive it was
renamed to) and ships each new range of complete records as a segment object (`stream_keys`)
every `stream.interval_ms`, or sooner once `stream.max_bytes` have accumulated. When that log is
rolled over it ships what remains, a final marker with the log's complete length, compacts the
log's segments at the target into one object (from the archived file), and goes on with the
next sequence.

Invariants:

- **never a torn record**: a segment ends at a record boundary (`complete_length` decodes every
  record in it); a record still being written waits for the next segment;
- **in order, contiguous**: segments go to a local spool first (`<state_dir>/stream/<target>/
  spool/`, files written whole), and leave it oldest first; the first one the target refuses
  stops the round, and later ones wait behind it. While the target is away the spool grows up
  to `stream.buffer_max_bytes`; then the streamer stops reading (the log stays on the store's
  disk) and its position file says the buffer is full (status: CRITICAL);
- **the position is never ahead of the target**: `(seq, offset)` in the position file
  (`stream_state`) moves only after the target acknowledged the segment ending there. On start
  it is checked against a listing of the target: a target holding less (objects lost) is
  shipped again from its end; one holding more (a crash after a put) is adopted once the
  segments' sha256 match the local log.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from standby import log as slog
from standby import timefmt
from standby.errors import IntegrityError, NotFound, StandbyError, UsageError
from standby.fsutil import write_atomic
from standby.redolog.files import CURRENT, list_archive
from standby.redolog.position import complete_length, header_seq
from standby.settings import Settings
from standby.transfer import codec, stream_keys, stream_state
from standby.transfer._base import Target
from standby.transfer.objects import ObjectTarget
from standby.transfer.stream_keys import Segment
from standby.transfer.stream_state import StreamPosition


# --------------------------------------------------------------------------------------------
# The log files of one redolog volume, by sequence


def log_path(redolog_dir: Path, seq: int) -> tuple[Path, bool] | None:
    """The file holding log `seq` and whether it is complete (archived), or None."""
    for lf in list_archive(redolog_dir / "archive"):
        if lf.seq == seq:
            return lf.path, True
    cur = redolog_dir / CURRENT
    if header_seq(cur) == seq:
        return cur, False
    return None


def read_range(path: Path, start: int, n: int) -> bytes:
    with open(path, "rb") as f:
        return os.pread(f.fileno(), n, start)


# --------------------------------------------------------------------------------------------
# The spool: segments and markers waiting for the target, oldest first


class Spool:
    def __init__(self, folder: Path) -> None:
        self.dir = folder

    def add(self, key: str, data: bytes) -> None:
        write_atomic(self.dir / key.replace("/", "~"), data)

    def pending(self) -> list[tuple[str, Path]]:
        if not self.dir.is_dir():
            return []
        files = [p for p in self.dir.iterdir() if not p.name.startswith(".")]
        return sorted((p.name.replace("~", "/"), p) for p in files)

    def size(self) -> int:
        return sum(p.stat().st_size for _k, p in self.pending())


class Streamer:
    """Follows one server's redo log and ships it to one object target."""

    def __init__(self, s: Settings, target: Target, *,
                 now_ms: Callable[[], int] = timefmt.now_ms,
                 heartbeat: Callable[[StreamPosition], None] = lambda p: None) -> None:
        if not isinstance(target, ObjectTarget):
            raise UsageError(f"standby stream ships to s3:// and file:// targets, not "
                             f"{target.url.scheme}://")
        self.s, self.t, self.now_ms, self.heartbeat = s, target, now_ms, heartbeat
        self.cfg = s.stream
        self.dir = s.volumes.redolog.path
        self.url = str(target.url)
        self.spool = Spool(stream_state.folder(s.state_dir, target.url) / "spool")
        self.log = slog.get("standby.transfer.stream", target=self.url)
        self.pos = StreamPosition(self.url, buffer_max_bytes=self.cfg.buffer_max_bytes)
        self.read_seq, self.read_off = -1, 0  # spooled up to here
        self.last_cut = 0
        self.last_written = 0
        self.said: tuple[object, ...] = ()  # what the position file last said

    # -- start: the position checked against the target -------------------------------------
    def start(self) -> StreamPosition:
        saved = stream_state.read(self.s.state_dir, self.t.url)
        listing = stream_keys.parse(self.t.store.list(stream_keys.PREFIX))
        pos = saved or StreamPosition(self.url)
        seq, off = pos.seq, pos.offset
        if seq < 0:
            if listing.seqs:
                seq, off = listing.seqs[-1], 0
            else:
                cur = header_seq(self.dir / CURRENT)
                seq, off = (cur if cur is not None else 1), 0
        while True:
            there = stream_keys.end_of(listing.segments.get(seq, []), 0)
            if there < off:
                self.log.warning("stream_target_behind", seq=seq, position=off, target=there)
                off = there  # the target lost objects: ship them again
            elif there > off:
                self._check_adopted(listing.segments.get(seq, []), seq, off, there)
                off = there
            fin = listing.finals.get(seq)
            if fin is not None and off >= fin.length:
                seq, off = seq + 1, 0
                continue
            break
        self.pos = replace(pos, seq=seq, offset=off, buffer_max_bytes=self.cfg.buffer_max_bytes,
                           target=self.url)
        # What is spooled past the position stays, and reading goes on after it.
        here = (seq, off)
        for key, path in self.spool.pending():
            ends = spooled_end(key)
            if ends is None or ends <= here:
                path.unlink()
            else:
                here = max(here, ends)
        self.read_seq, self.read_off = here
        self._save(force=True)
        self.log.info("stream_start", seq=seq, offset=off)
        return self.pos

    def _check_adopted(self, segs: list[Segment], seq: int, start: int, end: int) -> None:
        found = log_path(self.dir, seq)
        for seg in stream_keys.chain(segs, start):
            if found is None:
                raise NotFound(f"log seq {seq} is at the target, and no longer on this host",
                               hint="nothing to check it against; remove its position file")
            data = read_range(found[0], seg.start, seg.size)
            if seg.start > 0 and codec.sha256(data) != seg.sha256:
                raise IntegrityError(f"the target holds {seg.key}, which is not this log's "
                                     f"bytes {seg.start}..{seg.end}",
                                     hint="is another server streaming to the same prefix?")

    # -- one round -------------------------------------------------------------------------
    def step(self) -> None:
        """Spool what the log gained (if it is time), send the spool, save the position."""
        now = self.now_ms()
        if self.spool.size() < self.cfg.buffer_max_bytes:
            self._cut(now)
        self._send()
        self._save()

    def _cut(self, now: int) -> None:
        found = log_path(self.dir, self.read_seq)
        if found is None:
            return  # between a rollover's renames, or not created yet
        path, archived = found
        size = path.stat().st_size
        waiting = size - self.read_off
        due = now - self.last_cut >= self.cfg.interval_ms
        if waiting > 0 and (due or waiting >= self.cfg.max_bytes or archived):
            data = read_range(path, self.read_off, min(waiting, self.cfg.max_bytes))
            n = complete_length(data, self.read_off)
            if n > 0:
                data = data[:n]
                key = stream_keys.segment_key(self.read_seq, self.read_off, self.read_off + n,
                                              hashlib.sha256(data).hexdigest())
                self.spool.add(key, codec.encode(data, level=self.t.level,
                                                 key=self.t.enc_key)[0])
                self.read_off += n
                self.last_cut = now
                return
        if archived and (waiting <= 0 or complete_length(
                read_range(path, self.read_off, waiting), self.read_off) == 0):
            # Everything complete in the archived log is spooled: mark its end and go on.
            rolled = int(path.stat().st_mtime * 1000)
            self.spool.add(stream_keys.final_key(self.read_seq, self.read_off, rolled), b"")
            self.read_seq, self.read_off = self.read_seq + 1, 0

    def _send(self) -> None:
        for key, path in self.spool.pending():
            data = path.read_bytes()
            try:
                self.t.store.put(key, data)
            except (StandbyError, OSError) as e:
                if self.pos.error != str(e):
                    self.log.warning("stream_target_failed", error=str(e), key=key)
                self.pos = replace(self.pos, error=str(e))
                return
            path.unlink()
            parsed = stream_keys.parse([key])
            p = self.pos
            p = replace(p, puts=p.puts + 1, error=None)
            for segs in parsed.segments.values():
                seg = segs[0]
                p = replace(p, seq=seg.seq, offset=seg.end, segments=p.segments + 1,
                            bytes_shipped=p.bytes_shipped + seg.size, shipped_ms=self.now_ms())
            for fin in parsed.finals.values():
                p = replace(p, seq=fin.seq + 1, offset=0)
                self.pos = p
                self._compact(fin)
                p = self.pos
            self.pos = p

    def _compact(self, fin: stream_keys.Final) -> None:
        """One object for an archived log at the target, from the archive on this host."""
        if not self.cfg.compact:
            return
        prefix = f"{stream_keys.PREFIX}{fin.seq:010d}/"
        segs = stream_keys.parse(self.t.store.list(prefix)).segments.get(fin.seq, [])
        found = log_path(self.dir, fin.seq)
        if len(segs) < 2 or found is None or stream_keys.end_of(segs) < fin.length:
            return
        data = read_range(found[0], 0, fin.length)
        whole = Segment(fin.seq, 0, fin.length, hashlib.sha256(data).hexdigest())
        try:
            self.t.store.put(whole.key, codec.encode(data, level=self.t.level,
                                                     key=self.t.enc_key)[0])
            self.pos = replace(self.pos, puts=self.pos.puts + 1)
            for seg in segs:
                if seg != whole:
                    self.t.store.delete(seg.key)
        except (StandbyError, OSError) as e:  # the segments stay; a reader takes either
            self.log.warning("stream_compaction_failed", seq=fin.seq, error=str(e))
            return
        self.log.info("stream_compacted", seq=fin.seq, segments=len(segs), bytes=fin.length)

    def _save(self, *, force: bool = False) -> None:
        now = self.now_ms()
        p = self.pos
        cur = log_path(self.dir, p.seq)
        size = cur[0].stat().st_size if cur is not None else 0
        buffered = self.spool.size()
        caught_up = p.caught_up_ms
        if buffered == 0 and cur is not None and not cur[1] and complete_length(
                read_range(cur[0], p.offset, max(0, size - p.offset)), p.offset) == 0:
            caught_up = now  # every complete record of redo.log is at the target
        self.pos = replace(p, heartbeat_ms=now, caught_up_ms=caught_up, source_seq=p.seq,
                           source_size=size, buffered_bytes=buffered,
                           buffer_max_bytes=self.cfg.buffer_max_bytes)
        said = (self.pos.seq, self.pos.offset, self.pos.error, self.pos.buffered_bytes)
        if force or said != self.said or now - self.last_written >= 1000:
            stream_state.write(self.s.state_dir, self.pos)
            self.last_written, self.said = now, said
            self.heartbeat(self.pos)

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> StreamPosition:
        """Stream until `stop` is set (no last flush: a stop is what a crash looks like)."""
        self.start()
        poll = min(0.1, self.cfg.interval_ms / 5000)
        while not stop.is_set():
            self.step()
            stop.wait(poll)
        return self.pos


def spooled_end(key: str) -> tuple[int, int] | None:
    """Where reading stands once the spooled object `key` is sent: a segment's (seq, end), a
    final marker's (next seq, 0)."""
    parsed = stream_keys.parse([key])
    for segs in parsed.segments.values():
        return (segs[0].seq, segs[0].end)
    for fin in parsed.finals.values():
        return (fin.seq + 1, 0)
    return None
