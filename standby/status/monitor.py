"""`standby status --monitor`: the status judged against `[monitor]`, as sanoid's
`--monitor-snapshots` does for Nagios: exit 0 OK, 1 WARNING, 2 CRITICAL, one line.

    STANDBY CRITICAL - redolog snapshot 1h 5m old (critical after 1h 0m); ... | rpo_s=3.2;...

The checks are data (`CHECKS`): each one looks at the status and says OK, WARNING or CRITICAL
with a reason. The overall state is the worst of them; the line lists every check that is not
OK (worst first), or a short summary when all are. Pure: `evaluate(status, thresholds)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from standby.settings import MonitorSettings
from standby.status.model import Status
from standby.words import duration, size

OK, WARNING, CRITICAL = 0, 1, 2
NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}


@dataclass(frozen=True)
class Finding:
    check: str
    state: int
    reason: str


@dataclass(frozen=True)
class Verdict:
    state: int
    findings: tuple[Finding, ...]
    line: str

    @property
    def name(self) -> str:
        return NAMES[self.state]


def _age_check(what: str, ms: int | None, warn: float, crit: float, st: Status,
               missing: str) -> tuple[int, str]:
    age = st.age_s(ms)
    if age is None:
        return CRITICAL, missing
    if age > crit:
        return CRITICAL, f"{what} {duration(age)} old (critical after {duration(crit)})"
    if age > warn:
        return WARNING, f"{what} {duration(age)} old (warning after {duration(warn)})"
    return OK, f"{what} {duration(age)} old"


def _set(st: Status, t: MonitorSettings) -> tuple[int, str]:
    return _age_check("newest set", st.last_set_ms, t.set_warn_s, t.set_crit_s, st,
                      "no complete snapshot set")


def _redolog(st: Status, t: MonitorSettings) -> tuple[int, str]:
    return _age_check("newest redolog snapshot", st.last_redolog_ms, t.redolog_warn_s,
                      t.redolog_crit_s, st, "no snapshot of the redolog volume")


def _ship(st: Status, t: MonitorSettings) -> tuple[int, str]:
    if st.target is None and all(v.last_shipped is None for v in st.volumes):
        return OK, "shipping not configured"
    late = [(st.age_s(v.oldest_unshipped_ms) or 0.0, v) for v in st.volumes
            if v.oldest_unshipped_ms is not None]
    if not late:
        return OK, "everything shipped"
    age, v = max(late, key=lambda x: x[0])
    what = f"{v.volume} snapshot {v.oldest_unshipped} unshipped for {duration(age)}"
    if age > t.ship_crit_s:
        return CRITICAL, f"{what} (critical after {duration(t.ship_crit_s)})"
    if age > t.ship_warn_s:
        return WARNING, f"{what} (warning after {duration(t.ship_warn_s)})"
    return OK, what


def _stream(st: Status, t: MonitorSettings) -> tuple[int, str]:
    s = st.stream
    if s is None:
        return OK, "not streaming"
    if s.buffer_max_bytes and s.buffered_bytes >= s.buffer_max_bytes:
        return CRITICAL, (f"stream buffer full ({size(s.buffered_bytes)}): the target "
                          f"takes nothing ({s.error or 'no error recorded'})")
    if s.heartbeat_age_s > t.stream_crit_s:
        return CRITICAL, f"stream silent for {duration(s.heartbeat_age_s)}: is it running?"
    state, what = OK, f"stream lag {duration(s.lag_s)} ({size(s.lag_bytes)})"
    if s.lag_s > t.stream_crit_s:
        state, what = CRITICAL, f"{what} (critical after {duration(t.stream_crit_s)})"
    elif s.lag_s > t.stream_warn_s:
        state, what = WARNING, f"{what} (warning after {duration(t.stream_warn_s)})"
    elif s.heartbeat_age_s > t.stream_warn_s:
        state, what = WARNING, f"stream silent for {duration(s.heartbeat_age_s)}"
    if s.buffered_bytes and state == OK:
        state = WARNING
        what += f"; {size(s.buffered_bytes)} buffered ({s.error or 'target unreachable'})"
    return state, what


def _failures(st: Status, t: MonitorSettings) -> tuple[int, str]:
    if not st.failing:
        return OK, "no failed action"
    return WARNING, "; ".join(f"{a} failed: {e}" for a, _at, e in st.failing)


def _drill(st: Status, t: MonitorSettings) -> tuple[int, str]:
    d = st.drill
    if d is None or d.ok:
        return OK, "last drill ok" if d else "no drill yet"
    return WARNING, f"last drill failed: {d.detail}"


CHECKS: tuple[tuple[str, Callable[[Status, MonitorSettings], tuple[int, str]]], ...] = (
    ("set", _set), ("redolog", _redolog), ("ship", _ship), ("stream", _stream),
    ("actions", _failures), ("drill", _drill))


def evaluate(st: Status, t: MonitorSettings) -> Verdict:
    findings = tuple(Finding(name, *check(st, t)) for name, check in CHECKS)
    state = max(f.state for f in findings)
    bad = sorted((f for f in findings if f.state != OK), key=lambda f: -f.state)
    if bad:
        text = "; ".join(f.reason for f in bad)
    else:
        rpo = "RPO unknown" if st.rpo_s is None else f"RPO {duration(st.rpo_s)}"
        text = "; ".join([next(f.reason for f in findings if f.check == "set"),
                          next(f.reason for f in findings if f.check == "stream"), rpo])
    return Verdict(state, findings, f"STANDBY {NAMES[state]} - {text} | {perfdata(st, t)}")


def perfdata(st: Status, t: MonitorSettings) -> str:
    """Nagios performance data: label=value[unit];warn;crit."""
    parts = []
    for label, value, warn, crit in (
            ("set_age", st.age_s(st.last_set_ms), t.set_warn_s, t.set_crit_s),
            ("redolog_age", st.age_s(st.last_redolog_ms), t.redolog_warn_s, t.redolog_crit_s),
            ("stream_lag", st.stream.lag_s if st.stream else None, t.stream_warn_s,
             t.stream_crit_s),
            ("rpo", st.rpo_s, None, None)):
        if value is not None:
            tail = "" if warn is None else f";{warn:g};{crit:g}"
            parts.append(f"{label}={value:.3f}s{tail}")
    parts.append(f"unshipped={st.unshipped_bytes}B")
    return " ".join(parts)
