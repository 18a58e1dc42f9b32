"""The status model: from the catalog, the shipped state, the logs, the stream and the journal.

`build(inputs, now_ms)` is pure: every input is a value, the clock is an argument, so a test
sets "now" to any moment. The invariants it keeps:

- ages are `now - taken`, never negative (a clock step backwards reads as 0);
- the shipped redo position is the stream's when a stream position exists, else the redo point
  of the newest shipped redolog-volume snapshot; unshipped bytes are the redo bytes after it
  (later logs whole, the rest of its own log);
- RPO right now is 0 when nothing is unshipped, else the age of the moment the shipped position
  was current (the stream's last caught-up moment, or that snapshot's taken time); None when
  nothing was ever shipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from standby import timefmt
from standby.catalog.manifest import Manifest
from standby.settings import VOLUME_NAMES
from standby.status import journal
from standby.transfer.stream_state import StreamPosition


@dataclass(frozen=True)
class LogSize:
    """One redo log on the primary's redolog volume: its sequence (from its header) and size."""

    seq: int
    size: int


@dataclass(frozen=True)
class Inputs:
    server_id: str
    target: str | None  # the configured target URL (None: shipping is not configured)
    manifests: Sequence[Manifest] = ()
    shipped: Mapping[str, int] = field(default_factory=dict)  # "<id>/<volume>" -> shipped ms
    logs: Sequence[LogSize] = ()
    stream: StreamPosition | None = None
    journal: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeStatus:
    volume: str
    last_snapshot: str | None = None  # manifest id
    last_snapshot_ms: int | None = None  # taken at
    last_shipped: str | None = None
    last_shipped_ms: int | None = None  # that snapshot's taken-at time
    shipped_at_ms: int | None = None  # when it reached the target
    oldest_unshipped: str | None = None
    oldest_unshipped_ms: int | None = None


@dataclass(frozen=True)
class StreamStatus:
    target: str
    seq: int
    offset: int
    lag_bytes: int
    lag_s: float
    heartbeat_age_s: float
    buffered_bytes: int
    buffer_max_bytes: int
    error: str | None


@dataclass(frozen=True)
class DrillStatus:
    at_ms: int
    ok: bool
    rpo_s: float | None
    rto_s: float | None
    detail: str


@dataclass(frozen=True)
class Status:
    now_ms: int
    server_id: str
    target: str | None
    volumes: tuple[VolumeStatus, ...]
    last_set: str | None
    last_set_ms: int | None
    last_set_skew_ms: int | None
    last_redolog_ms: int | None  # the newest snapshot of the redolog volume, either kind
    shipped_position: tuple[int, int] | None  # (seq, offset) the target holds up to
    unshipped_bytes: int
    rpo_s: float | None
    stream: StreamStatus | None
    drill: DrillStatus | None
    failing: tuple[tuple[str, int, str], ...]  # (action, failed at ms, error)

    def volume(self, name: str) -> VolumeStatus:
        return next(v for v in self.volumes if v.volume == name)

    def age_s(self, ms: int | None) -> float | None:
        return None if ms is None else max(0, self.now_ms - ms) / 1000

    def as_dict(self) -> dict[str, Any]:
        """For `--json`: times as ISO 8601 UTC beside their ages in seconds."""
        def when(ms: int | None) -> str | None:
            return None if ms is None else timefmt.iso_utc(ms)

        vols = []
        for v in self.volumes:
            vols.append({"volume": v.volume, "last_snapshot": v.last_snapshot,
                         "last_snapshot_at": when(v.last_snapshot_ms),
                         "last_snapshot_age_s": self.age_s(v.last_snapshot_ms),
                         "last_shipped": v.last_shipped,
                         "last_shipped_taken_at": when(v.last_shipped_ms),
                         "last_shipped_age_s": self.age_s(v.last_shipped_ms),
                         "shipped_at": when(v.shipped_at_ms),
                         "oldest_unshipped": v.oldest_unshipped,
                         "oldest_unshipped_age_s": self.age_s(v.oldest_unshipped_ms)})
        return {"server_id": self.server_id, "now": when(self.now_ms), "target": self.target,
                "volumes": vols, "last_set": self.last_set,
                "last_set_at": when(self.last_set_ms),
                "last_set_skew_ms": self.last_set_skew_ms,
                "shipped_position": (None if self.shipped_position is None else
                                     {"seq": self.shipped_position[0],
                                      "offset": self.shipped_position[1]}),
                "unshipped_bytes": self.unshipped_bytes, "rpo_s": self.rpo_s,
                "stream": None if self.stream is None else asdict(self.stream),
                "drill": None if self.drill is None else {**asdict(self.drill),
                                                          "at": when(self.drill.at_ms)},
                "failing": [{"action": a, "at": when(t), "error": e}
                            for a, t, e in self.failing]}


def build(inp: Inputs, now_ms: int) -> Status:
    complete = sorted((m for m in inp.manifests if m.status == "complete"),
                      key=lambda m: (m.taken_at_ms, m.id))
    volumes = tuple(_volume(name, complete, inp.shipped) for name in VOLUME_NAMES)
    sets = [m for m in complete if m.kind == "set"]
    last_set = sets[-1] if sets else None
    redo = volumes[VOLUME_NAMES.index("redolog")]

    position: tuple[int, int] | None = None
    current_ms: int | None = None  # when the shipped position was the end of the log
    if inp.stream is not None and inp.stream.seq >= 0:
        position = (inp.stream.seq, inp.stream.offset)
        current_ms = inp.stream.caught_up_ms or inp.stream.shipped_ms
    elif redo.last_shipped is not None:
        m = next(m for m in complete if m.id == redo.last_shipped)
        rec = m.snapshot("redolog")
        assert rec is not None
        position = (rec.redo.seq, rec.redo.offset)
        current_ms = rec.taken_at_ms
    unshipped = unshipped_bytes(inp.logs, position)
    rpo: float | None = None
    if position is not None and current_ms is not None:
        rpo = 0.0 if unshipped == 0 else max(0, now_ms - current_ms) / 1000

    stream = None
    if inp.stream is not None:
        st = inp.stream
        lag = unshipped if position is not None else sum(x.size for x in inp.logs)
        lag_s = 0.0 if lag == 0 else max(0, now_ms - (st.caught_up_ms or st.heartbeat_ms)) / 1000
        stream = StreamStatus(st.target, st.seq, st.offset, lag, lag_s,
                              max(0, now_ms - st.heartbeat_ms) / 1000, st.buffered_bytes,
                              st.buffer_max_bytes, st.error)

    return Status(now_ms=now_ms, server_id=inp.server_id, target=inp.target, volumes=volumes,
                  last_set=last_set.id if last_set else None,
                  last_set_ms=last_set.taken_at_ms if last_set else None,
                  last_set_skew_ms=last_set.skew_ms if last_set else None,
                  last_redolog_ms=redo.last_snapshot_ms, shipped_position=position,
                  unshipped_bytes=unshipped, rpo_s=rpo, stream=stream,
                  drill=_drill(inp.journal), failing=tuple(journal.failing(inp.journal)))


def _volume(name: str, complete: Sequence[Manifest], shipped: Mapping[str, int]
            ) -> VolumeStatus:
    last = last_shipped = oldest_unshipped = None
    for m in complete:
        rec = m.snapshot(name)
        if rec is None:
            continue
        last = (m.id, rec.taken_at_ms)
        at = shipped.get(f"{m.id}/{name}")
        if at is not None:
            last_shipped = (m.id, rec.taken_at_ms, at)
            oldest_unshipped = None  # an older gap superseded by a later shipped snapshot
        elif oldest_unshipped is None:
            oldest_unshipped = (m.id, rec.taken_at_ms)
    return VolumeStatus(
        name,
        last_snapshot=last[0] if last else None, last_snapshot_ms=last[1] if last else None,
        last_shipped=last_shipped[0] if last_shipped else None,
        last_shipped_ms=last_shipped[1] if last_shipped else None,
        shipped_at_ms=last_shipped[2] if last_shipped else None,
        oldest_unshipped=oldest_unshipped[0] if oldest_unshipped else None,
        oldest_unshipped_ms=oldest_unshipped[1] if oldest_unshipped else None)


def unshipped_bytes(logs: Sequence[LogSize], position: tuple[int, int] | None) -> int:
    """Redo bytes after `position` (seq, offset): later logs whole, the rest of its own."""
    if position is None:
        return sum(x.size for x in logs)
    seq, offset = position
    return sum(x.size for x in logs if x.seq > seq) + sum(
        max(0, x.size - offset) for x in logs if x.seq == seq)


def _drill(j: Mapping[str, Any]) -> DrillStatus | None:
    e = j.get("actions", {}).get("drill")
    if not e:
        return None
    ok_ms, fail_ms = e.get("ok_ms", -1), e.get("fail_ms", -1)
    d = e.get("detail") or {}
    ok = ok_ms > fail_ms
    rpo, rto = d.get("rpo_s"), d.get("rto_s")
    return DrillStatus(at_ms=max(ok_ms, fail_ms), ok=ok,
                       rpo_s=None if rpo is None else float(rpo),
                       rto_s=None if rto is None else float(rto),
                       detail="" if ok else str(e.get("error", "failed")))
