"""Pull, the last step: the streamed segments after the pulled redolog snapshot, onto the
standby's redolog volume.

After `standby pull` has landed the set and the newest redolog snapshot, `extend` looks at the
target's stream (`stream_keys`): from the sequence of the volume's current log on, each log is
assembled from its contiguous segments (every one decoded and its sha256 checked against its
name), cut at its last complete record (`position.complete_length`), and written onto the
volume where it goes further than what the snapshot holds: a log the stream marked final goes
to `archive/` under its archive name, the last one becomes `redo.log`. It stops at the first
gap, the first segment that does not check (a torn or altered object: reported, never used),
or a log that is not final — later logs could not be replayed contiguously — and says so.

Invariant: the volume never holds a torn record or a byte that did not check; what it reaches
is reported exactly (sequence, offset, the commit time of the last transaction).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby import log as slog
from standby import timefmt
from standby.errors import StandbyError
from standby.fsutil import write_atomic
from standby.redolog.files import ARCHIVE_DIR, CURRENT, archive_name
from standby.redolog.position import complete_length, logs_by_seq, reach
from standby.redolog.reader import scan
from standby.settings import Settings
from standby.transfer import codec, stream_keys
from standby.transfer.objects import ObjectTarget
from standby.transfer.stream_keys import StreamListing


@dataclass
class Extended:
    seq: int = -1
    offset: int = 0
    last_commit_ms: int = 0
    segments: int = 0
    bytes: int = 0
    logs_written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "offset": self.offset,
                "last_commit": (timefmt.iso_utc(self.last_commit_ms) if self.last_commit_ms
                                else None),
                "segments": self.segments, "bytes": self.bytes,
                "logs_written": self.logs_written, "notes": self.notes}

    def describe(self) -> str:
        when = (f", last commit {timefmt.gmt_stamp(self.last_commit_ms)} GMT"
                if self.last_commit_ms else "")
        return (f"stream: {self.segments} segment(s) applied; the redo log reaches seq "
                f"{self.seq} offset {self.offset}{when}")


def _good_end(path: Path) -> int:
    with scan(path) as sc:
        for _ in sc:
            pass
        return sc.good_end


def assemble(target: ObjectTarget, listing: StreamListing, seq: int, out: Extended
             ) -> tuple[bytes, bool]:
    """Log `seq` from its contiguous, checked segments, cut at its last complete record; and
    whether every segment up to the log's final length was there and checked."""
    data = bytearray()
    ok = True
    for seg in stream_keys.chain(listing.segments.get(seq, [])):
        try:
            plain = codec.decode(target.store.get(seg.key), key=target.enc_key,
                                 encrypted=target.enc_key is not None, what=seg.key)
        except StandbyError as e:
            out.notes.append(f"segment {seg.key} cannot be read ({e}): stopped before it")
            ok = False
            break
        if len(plain) != seg.size or hashlib.sha256(plain).hexdigest() != seg.sha256:
            out.notes.append(f"segment {seg.key} is torn or altered (its bytes do not hash to "
                             "its name): stopped before it")
            ok = False
            break
        data += plain
        out.segments += 1
        out.bytes += len(plain)
    n = complete_length(bytes(data), 0)
    if n < len(data):
        out.notes.append(f"log seq {seq}: cut at offset {n}, its last complete record")
    fin = listing.finals.get(seq)
    return bytes(data[:n]), ok and fin is not None and n >= fin.length


def extend(sb: Settings, target: ObjectTarget) -> Extended | None:
    """Apply the stream onto the standby's redolog volume (see the module docstring); None when
    the target holds no stream."""
    log = slog.get("standby.transfer.stream_pull", target=str(target.url))
    listing = stream_keys.parse(target.store.list(stream_keys.PREFIX))
    if not listing.seqs:
        return None
    vol = sb.volumes.redolog.path
    local = dict(logs_by_seq(vol))
    out = Extended()
    seq = max(local) if local else listing.seqs[0]
    if seq not in listing.seqs:
        out.notes.append(f"the stream does not hold log seq {seq}, the volume's current log: "
                         "nothing after the redolog snapshot")
    plan: list[tuple[int, bytes | None, bool]] = []  # seq, bytes (None: keep local), final
    while seq in listing.seqs:
        data, complete = assemble(target, listing, seq, out)
        mine = local.get(seq)
        if mine is not None and _good_end(mine) >= len(data):
            plan.append((seq, None, complete))
        else:
            plan.append((seq, data, complete))
        if not complete:
            break
        seq += 1
    if plan and plan[-1][2] and plan[-1][0] + 1 not in listing.seqs:
        out.notes.append(f"log seq {plan[-1][0]} is final and the stream holds no later log")
    _write(vol, listing, plan, local, out)
    r = reach(vol)
    out.seq, out.offset, out.last_commit_ms = r.seq, r.offset, r.last_commit_ms
    log.info("stream_applied", **out.as_dict())
    return out


def _write(vol: Path, listing: StreamListing, plan: list[tuple[int, bytes | None, bool]],
           local: dict[int, Path], out: Extended) -> None:
    last = plan[-1][0] if plan else None
    for seq, data, _complete in plan:
        if seq == last:
            dest = vol / CURRENT
        else:
            fin = listing.finals[seq]
            dest = vol / ARCHIVE_DIR / archive_name(fin.rolled_ms, seq)
        mine = local.get(seq)
        if data is None:
            if mine is not None and mine != dest:
                write_atomic(dest, mine.read_bytes())
                mine.unlink()
            continue
        write_atomic(dest, data)
        out.logs_written.append(str(dest.relative_to(vol)))
        if mine is not None and mine != dest:
            mine.unlink()
