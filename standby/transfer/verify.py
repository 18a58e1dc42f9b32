"""`standby verify`: re-read a target's catalog, every object's checksum, every chain.

From one fresh listing of the server's prefix: every manifest is read and verified (signature,
form, place), and each of its volumes must have a record; every record is verified and its chain
must reach a full stream with every link there; every object a record lists must be there with
its recorded size and (unless `deep` is off) hash to its recorded sha256 — which needs no
encryption key, the hash being over the stored bytes. Anything wrong is a problem naming the
object; `standby verify` exits 8 when there is one. Objects no record lists (an interrupted
upload's leftovers) and keys that fit no layout are notes, not problems: nothing can mistake
them for a snapshot.

Streamed redo (`stream/`, on object targets): each log's segments must run contiguously from
offset 0 — a gap is a problem, as is a rolled-over log whose segments end before its final
length — and (when deep) each segment must decode, with the key for an encrypted target, to the
length and sha256 its name gives. The open log's last segments may still be arriving: only gaps
and damage count there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from standby.errors import FormatError, IntegrityError, NotFound, StandbyError
from standby.transfer import codec, stream_keys
from standby.transfer._base import Progress, Target
from standby.transfer.objects import ObjectTarget


@dataclass
class VerifyReport:
    target: str
    sets: int = 0
    redolog_snapshots: int = 0
    records: int = 0
    objects: int = 0
    stored_bytes: int = 0
    stream_logs: int = 0
    stream_segments: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def verify(target: Target, *, deep: bool = True,
           progress: Callable[[Progress], None] = lambda p: None) -> VerifyReport:
    t0 = time.monotonic()
    cat = target.catalog
    listing = cat.listing(fresh=True)
    rep = VerifyReport(str(target.url))
    for mid, kind in sorted(listing.manifests.items()):
        try:
            m = cat.get(mid)
        except (IntegrityError, FormatError, NotFound) as e:
            rep.problems.append(e.message)
            continue
        if kind == "set":
            rep.sets += 1
        else:
            rep.redolog_snapshots += 1
        for s in m.snapshots:
            if (s.volume, mid) not in listing.records:
                rep.problems.append(f"{kind} {mid} at {target.url}: its {s.volume} snapshot has "
                                    "no record there")
    listed: set[str] = set()
    for vol, mid in sorted(listing.records):
        try:
            r = cat.record(vol, mid)
            listing.chain(vol, mid)
        except (IntegrityError, FormatError, NotFound) as e:
            rep.problems.append(e.message)
            continue
        rep.records += 1
        listed.update(o.key for o in r.objects)
        rep.objects += len(r.objects)
        rep.stored_bytes += sum(o.size for o in r.objects)
        rep.problems += target.check_snapshot(r, deep=deep, progress=progress)
    left = sorted(k for k in listing.objects if k not in listed)
    if left:
        rep.notes.append(f"{len(left)} object(s) no record lists (an interrupted upload's "
                         f"leftovers; `standby prune --target` removes them): "
                         + ", ".join(left[:5]))
    if listing.strays:
        rep.notes.append(f"{len(listing.strays)} key(s) that are not standby's: "
                         + ", ".join(listing.strays[:5]))
    if isinstance(target, ObjectTarget):
        _verify_stream(target, rep, deep)
    rep.seconds = round(time.monotonic() - t0, 3)
    return rep


def _verify_stream(target: ObjectTarget, rep: VerifyReport, deep: bool) -> None:
    listing = stream_keys.parse(target.store.list(stream_keys.PREFIX))
    for seq in listing.seqs:
        segs = listing.segments.get(seq, [])
        run = stream_keys.chain(segs)
        end = run[-1].end if run else 0
        rep.stream_logs += 1
        rep.stream_segments += len(run)
        if segs and max(sg.end for sg in segs) > end:  # (small ones a compaction left: fine)
            rep.problems.append(f"streamed log seq {seq}: a gap at offset {end}; its segments "
                                "after it cannot be read")
        fin = listing.finals.get(seq)
        if fin is not None and end < fin.length:
            rep.problems.append(f"streamed log seq {seq} was rolled over at length "
                                f"{fin.length} but its segments end at {end}")
        for sg in run if deep else ():
            try:
                plain = codec.decode(target.store.get(sg.key), key=target.enc_key,
                                     encrypted=target.enc_key is not None, what=sg.key)
            except StandbyError as e:
                rep.problems.append(f"segment {sg.key}: {e}")
                continue
            if len(plain) != sg.size or hashlib.sha256(plain).hexdigest() != sg.sha256:
                rep.problems.append(f"segment {sg.key}: its bytes do not hash to its name "
                                    "(torn or altered)")
    if listing.strays:
        rep.notes.append(f"{len(listing.strays)} key(s) under stream/ that are not segments: "
                         + ", ".join(listing.strays[:5]))
