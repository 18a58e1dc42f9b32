"""`standby drill --runs N`: N drills one after another, and the distribution of what they
measured (RPO, RTO, replay rate), with how many passed.

`summary(reports)` is pure: the minimum, median, 90th percentile (nearest rank) and maximum of
each figure over the runs; `lines(summary)` says it in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from standby.drill import DrillReport

FIGURES = (("rpo_s", "RPO", "s"), ("rto_s", "RTO", "s"), ("replay_ops_per_s", "replay", "ops/s"))


@dataclass(frozen=True)
class Spread:
    low: float
    median: float
    p90: float
    high: float


def spread(values: Sequence[float]) -> Spread:
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    n = len(xs)
    mid = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    return Spread(xs[0], mid, xs[max(0, math.ceil(0.9 * n) - 1)], xs[-1])


def summary(reports: Sequence[DrillReport]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(reports), "ok": sum(1 for r in reports if r.ok),
                           "committed_ops_lost": sum(r.committed_ops_lost for r in reports),
                           "divergent_mailboxes": sum(r.divergent_mailboxes for r in reports)}
    for key, _name, _unit in FIGURES:
        sp = spread([float(getattr(r, key)) for r in reports])
        out[key] = {"min": sp.low, "median": sp.median, "p90": sp.p90, "max": sp.high}
    out["seeds"] = [n.split(" ", 1)[1] for r in reports for n in r.notes
                    if n.startswith("seed ")]
    return out


def lines(s: dict[str, Any]) -> list[str]:
    out = [f"drills passed          {s['ok']} of {s['runs']} ({s['committed_ops_lost']} "
           f"committed ops lost, {s['divergent_mailboxes']} divergent mailboxes in all)"]
    for key, name, unit in FIGURES:
        d = s[key]
        out.append(f"{name:8s} min {d['min']:g} {unit}, median {d['median']:g} {unit}, "
                   f"p90 {d['p90']:g} {unit}, max {d['max']:g} {unit}")
    out.append("seeds                  " + ", ".join(s["seeds"]))
    return out
