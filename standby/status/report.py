"""`standby status` in words: one block per volume, then shipping, the stream, RPO, the drill.

Times as Zimbra prints them (GMT stamps) with their ages; never a raw epoch or `None`."""

from __future__ import annotations

from standby import timefmt
from standby.status.model import Status
from standby.words import duration, size


def _when(st: Status, ms: int | None) -> str:
    if ms is None:
        return "never"
    return f"{timefmt.gmt_stamp(ms)} GMT ({duration(st.age_s(ms) or 0)} ago)"


def lines(st: Status) -> list[str]:
    out = [f"server {st.server_id}, target {st.target or 'not configured'}"]
    for v in st.volumes:
        out.append(f"  {v.volume:8s} last snapshot {v.last_snapshot or 'none'}, "
                   f"{_when(st, v.last_snapshot_ms)}")
        shipped = (f"{v.last_shipped}, taken {_when(st, v.last_shipped_ms)}"
                   if v.last_shipped else "nothing")
        out.append(f"  {'':8s} last shipped  {shipped}")
        if v.oldest_unshipped:
            out.append(f"  {'':8s} unshipped     since {v.oldest_unshipped}, "
                       f"{_when(st, v.oldest_unshipped_ms)}")
    if st.last_set:
        out.append(f"last set       {st.last_set}, skew {st.last_set_skew_ms} ms")
    else:
        out.append("last set       none")
    if st.stream is None:
        out.append("stream         not running here")
    else:
        s = st.stream
        out.append(f"stream         to {s.target}: at seq {s.seq} offset {s.offset}, lag "
                   f"{size(s.lag_bytes)} / {duration(s.lag_s)}, last heartbeat "
                   f"{duration(s.heartbeat_age_s)} ago")
        if s.buffered_bytes:
            out.append(f"               {size(s.buffered_bytes)} buffered locally: "
                       f"{s.error or 'target unreachable'}")
    out.append(f"unshipped      {size(st.unshipped_bytes)} of redo")
    out.append("RPO now        " + ("unknown (nothing shipped)" if st.rpo_s is None
                                    else duration(st.rpo_s)))
    if st.drill is None:
        out.append("last drill     none recorded")
    else:
        d = st.drill
        res = "ok" if d.ok else f"FAILED: {d.detail}"
        extra = "" if d.rpo_s is None else f", RPO {d.rpo_s} s, RTO {d.rto_s} s"
        out.append(f"last drill     {res}{extra}, {_when(st, d.at_ms)}")
    for action, at, err in st.failing:
        out.append(f"failed         {action} {_when(st, at)}: {err}")
    return out
