"""Where streamed redo lives at a target, and which segments make a contiguous log.

    stream/<seq>/<start>-<end>.<sha256>.seg     bytes [start, end) of log <seq> (zstd, and
                                                AES-GCM when the target is encrypted); sha256
                                                of the plain bytes
    stream/<seq>/final.<length>.<GMT stamp>     log <seq> was rolled over at that time; its
                                                complete records end at <length>

Numbers are zero-padded so a listing sorts in log order. A segment of a log that is complete
may be compacted into one segment [0, length) and the small ones deleted; a reader meeting both
(a crash between the two) takes the longest segment at each offset.

`parse` reads a listing (pure; round trip with `segment_key` / `final_key` under Hypothesis);
`chain` picks, from offset `start`, the contiguous run of segments a reader uses, stopping at
the first gap; `expired` lists what retention removes below a log sequence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from standby import timefmt
from standby.errors import UsageError

PREFIX = "stream/"
_SEG = re.compile(r"stream/(\d{10})/(\d{14})-(\d{14})\.([0-9a-f]{64})\.seg\Z")
_FINAL = re.compile(r"stream/(\d{10})/final\.(\d+)\.(\d{8}\.\d{6}\.\d{3})\Z")


@dataclass(frozen=True, order=True)
class Segment:
    seq: int
    start: int
    end: int
    sha256: str

    @property
    def key(self) -> str:
        return segment_key(self.seq, self.start, self.end, self.sha256)

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Final:
    seq: int
    length: int
    rolled_ms: int

    @property
    def key(self) -> str:
        return final_key(self.seq, self.length, self.rolled_ms)


@dataclass
class StreamListing:
    segments: dict[int, list[Segment]] = field(default_factory=dict)  # seq -> sorted
    finals: dict[int, Final] = field(default_factory=dict)
    strays: list[str] = field(default_factory=list)

    @property
    def seqs(self) -> list[int]:
        return sorted(set(self.segments) | set(self.finals))


def segment_key(seq: int, start: int, end: int, sha256: str) -> str:
    if not 0 <= start < end or seq < 0 or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise UsageError(f"not a segment: seq {seq}, [{start}, {end}), sha256 {sha256!r}")
    return f"{PREFIX}{seq:010d}/{start:014d}-{end:014d}.{sha256}.seg"


def final_key(seq: int, length: int, rolled_ms: int) -> str:
    return f"{PREFIX}{seq:010d}/final.{length}.{timefmt.gmt_stamp(rolled_ms)}"


def parse(keys: Iterable[str] | Mapping[str, int]) -> StreamListing:
    out = StreamListing()
    for k in keys:
        if m := _SEG.match(k):
            seg = Segment(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4))
            if seg.start >= seg.end:
                out.strays.append(k)
                continue
            out.segments.setdefault(seg.seq, []).append(seg)
        elif m := _FINAL.match(k):
            out.finals[int(m.group(1))] = Final(int(m.group(1)), int(m.group(2)),
                                                timefmt.parse_gmt_stamp(m.group(3)))
        elif k.startswith(PREFIX):
            out.strays.append(k)
    for segs in out.segments.values():
        segs.sort()
    return out


def chain(segments: Iterable[Segment], start: int = 0) -> list[Segment]:
    """The segments a reader takes from offset `start`: at each offset the one reaching
    furthest; it ends at the first offset no segment starts at (a gap, or the end)."""
    by_start: dict[int, Segment] = {}
    for s in segments:
        best = by_start.get(s.start)
        if best is None or s.end > best.end:
            by_start[s.start] = s
    out: list[Segment] = []
    pos = start
    while pos in by_start:
        s = by_start[pos]
        out.append(s)
        pos = s.end
    return out


def end_of(segments: Iterable[Segment], start: int = 0) -> int:
    """Where the contiguous run from `start` ends (`start` when there is none)."""
    c = chain(segments, start)
    return c[-1].end if c else start


def expired(listing: StreamListing, below: int) -> list[str]:
    """The keys of the logs under sequence `below` that were rolled over (a final marker): no
    pull reads them. Each log's segments come before its marker, so a removal cut short leaves
    the marker and a reader still knows the log ended. Open logs (no marker) always stay."""
    out: list[str] = []
    for seq in sorted(listing.finals):
        if seq < below:
            out += [sg.key for sg in listing.segments.get(seq, [])]
            out.append(listing.finals[seq].key)
    return out
