"""`standby metrics`: a Prometheus textfile for node_exporter's textfile collector.

The metrics are declared once, as data (`METRICS`: name, type, help); `families(status,
journal, verdict)` fills in their samples from the status model and the action journal, and
`render` writes the text exposition format (0.0.4): for every family a `# HELP` and a `# TYPE`
line, then its samples. Names follow Prometheus conventions: `standby_` prefix, base units
(`_seconds`, `_bytes`), `_total` for counters, `_timestamp_seconds` for times.

`write_textfile` replaces the file atomically (`fsutil.write_atomic`): node_exporter never reads
half of one. `refresh(settings, now_ms)` does all of it when `[metrics] textfile` is set, and is
called after every snapshot, ship, stream heartbeat, replay and drill (`standby.observe`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby.fsutil import write_atomic
from standby.settings import Settings
from standby.status import gather, journal, monitor
from standby.status.model import Status, build

GAUGE, COUNTER = "gauge", "counter"

METRICS: tuple[tuple[str, str, str], ...] = (
    ("standby_last_success_timestamp_seconds", GAUGE,
     "When an action last succeeded (snapshot and ship per volume), Unix time."),
    ("standby_last_failure_timestamp_seconds", GAUGE, "When an action last failed, Unix time."),
    ("standby_action_failing", GAUGE, "1 when the last run of an action failed, else 0."),
    ("standby_snapshot_age_seconds", GAUGE, "Age of the newest snapshot of each volume."),
    ("standby_shipped_snapshot_age_seconds", GAUGE,
     "Age of the newest snapshot of each volume that is at the target."),
    ("standby_set_skew_seconds", GAUGE,
     "The newest set's skew: last volume's snapshot time minus the first's."),
    ("standby_rpo_seconds", GAUGE,
     "Recovery point right now: how much redo history a failover now would lose."),
    ("standby_unshipped_bytes", GAUGE, "Redo log bytes written and not yet at the target."),
    ("standby_stream_lag_bytes", GAUGE, "Bytes the redo stream is behind redo.log."),
    ("standby_stream_lag_seconds", GAUGE, "Seconds the redo stream is behind redo.log."),
    ("standby_stream_buffered_bytes", GAUGE,
     "Stream segments buffered locally while the target is unreachable."),
    ("standby_stream_heartbeat_timestamp_seconds", GAUGE,
     "When the stream last looked at redo.log, Unix time."),
    ("standby_stream_segments_total", COUNTER, "Redo segments the target acknowledged."),
    ("standby_stream_puts_total", COUNTER, "Objects the stream wrote at the target."),
    ("standby_shipped_bytes_total", COUNTER,
     "Plain bytes shipped to the target (snapshots and stream segments)."),
    ("standby_replay_ops_total", COUNTER, "Redo ops applied by replays on this host."),
    ("standby_replay_ops_per_second", GAUGE, "Apply rate of the last replay."),
    ("standby_drill_success", GAUGE, "1 when the last drill passed, 0 when it failed."),
    ("standby_drill_timestamp_seconds", GAUGE, "When the last drill ended, Unix time."),
    ("standby_drill_rpo_seconds", GAUGE, "RPO the last drill measured."),
    ("standby_drill_rto_seconds", GAUGE, "RTO the last drill measured."),
    ("standby_monitor_state", GAUGE,
     "What `standby status --monitor` says: 0 OK, 1 WARNING, 2 CRITICAL."),
)


@dataclass
class Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1 << 53 else repr(float(v))


def render(fams: Sequence[Family]) -> str:
    """The text exposition format of `fams` (every family with HELP and TYPE)."""
    out: list[str] = []
    for f in fams:
        out.append(f"# HELP {f.name} {f.help.replace(chr(92), chr(92) * 2)}")
        out.append(f"# TYPE {f.name} {f.kind}")
        for labels, value in f.samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            out.append(f"{f.name}{{{lab}}} {_number(value)}" if lab
                       else f"{f.name} {_number(value)}")
    return "\n".join(out) + "\n"


def families(st: Status, j: Mapping[str, Any], verdict: monitor.Verdict | None = None
             ) -> list[Family]:
    """Every declared metric, with the samples the status and the journal give it (a family
    without samples is still declared, so dashboards see the name)."""
    fams = {name: Family(name, kind, text) for name, kind, text in METRICS}

    def put(name: str, value: float | None, **labels: str) -> None:
        if value is not None:
            fams[name].samples.append((labels, float(value)))

    def age(ms: int | None) -> float | None:
        return st.age_s(ms)

    for v in st.volumes:
        put("standby_last_success_timestamp_seconds", _s(v.last_snapshot_ms),
            action="snapshot", volume=v.volume)
        put("standby_last_success_timestamp_seconds", _s(v.shipped_at_ms), action="ship",
            volume=v.volume)
        put("standby_snapshot_age_seconds", age(v.last_snapshot_ms), volume=v.volume)
        put("standby_shipped_snapshot_age_seconds", age(v.last_shipped_ms), volume=v.volume)
    failing = {a for a, _t, _e in journal.failing(j)}
    for key, e in sorted(j.get("actions", {}).items()):
        action, _, volume = key.partition(":")
        if action not in ("snapshot", "ship"):
            put("standby_last_success_timestamp_seconds", _s(e.get("ok_ms")), action=action,
                volume=volume)
        put("standby_last_failure_timestamp_seconds", _s(e.get("fail_ms")), action=action,
            volume=volume)
        put("standby_action_failing", 1.0 if key in failing else 0.0, action=action,
            volume=volume)
    put("standby_set_skew_seconds",
        None if st.last_set_skew_ms is None else st.last_set_skew_ms / 1000)
    put("standby_rpo_seconds", st.rpo_s)
    put("standby_unshipped_bytes", st.unshipped_bytes)
    totals = j.get("totals", {})
    shipped_bytes = int(totals.get("ship_bytes", 0))
    if st.stream is not None:
        s = st.stream
        put("standby_stream_lag_bytes", s.lag_bytes, target=s.target)
        put("standby_stream_lag_seconds", s.lag_s, target=s.target)
        put("standby_stream_buffered_bytes", s.buffered_bytes, target=s.target)
        put("standby_stream_heartbeat_timestamp_seconds", st.now_ms / 1000 - s.heartbeat_age_s,
            target=s.target)
    put("standby_shipped_bytes_total", shipped_bytes)
    put("standby_replay_ops_total", int(totals.get("replay_ops", 0)))
    last_replay = (j.get("actions", {}).get("replay") or {}).get("detail") or {}
    put("standby_replay_ops_per_second", last_replay.get("ops_per_s"))
    if st.drill is not None:
        d = st.drill
        put("standby_drill_success", 1.0 if d.ok else 0.0)
        put("standby_drill_timestamp_seconds", d.at_ms / 1000)
        put("standby_drill_rpo_seconds", d.rpo_s)
        put("standby_drill_rto_seconds", d.rto_s)
    if verdict is not None:
        put("standby_monitor_state", verdict.state)
    return list(fams.values())


def stream_counters(fams: list[Family], *, target: str, segments: int, puts: int,
                    stream_bytes: int) -> None:
    """Add the stream's own counters (from its position file) to `fams`."""
    by = {f.name: f for f in fams}
    by["standby_stream_segments_total"].samples.append(({"target": target}, float(segments)))
    by["standby_stream_puts_total"].samples.append(({"target": target}, float(puts)))
    total = by["standby_shipped_bytes_total"]
    total.samples = [(lab, v + stream_bytes) for lab, v in total.samples]


def _s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def write_textfile(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (readable by node_exporter: mode 0644)."""
    write_atomic(path, text, mode=0o644)


def collect(s: Settings, now_ms: int) -> str:
    """The textfile's content for server `s` at `now_ms`."""
    inp = gather.inputs(s)
    st = build(inp, now_ms)
    fams = families(st, inp.journal, monitor.evaluate(st, s.monitor))
    if inp.stream is not None:
        stream_counters(fams, target=inp.stream.target, segments=inp.stream.segments,
                        puts=inp.stream.puts, stream_bytes=inp.stream.bytes_shipped)
    return render(fams)


def refresh(s: Settings, now_ms: int, *, path: Path | None = None) -> Path | None:
    """Write the textfile (`path`, else `[metrics] textfile`); None when there is none."""
    target = path or s.metrics.textfile
    if target is None:
        return None
    write_textfile(target, collect(s, now_ms))
    return target
