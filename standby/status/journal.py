"""The journal of actions: when each one last succeeded and failed, and running totals.

    <state_dir>/status/actions.json
    {"actions": {"ship": {"ok_ms": ..., "fail_ms": ..., "error": "...", "detail": {...}}, ...},
     "totals": {"ship_bytes": ..., "replay_ops": ...}}

Actions are `ACTIONS`; an entry may carry a volume (`snapshot:db`). The file is rewritten whole
(`write_atomic`) under a flock, so concurrent recorders (cron's ship and the stream) never lose
each other's entries and a reader never sees half of it. Totals only grow (Prometheus counters).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from standby.errors import FormatError
from standby.fsutil import write_atomic

ACTIONS = ("snapshot", "ship", "stream", "replay", "drill", "pull")
FILE = Path("status") / "actions.json"


def path(state_dir: Path) -> Path:
    return state_dir / FILE


def read(state_dir: Path) -> dict[str, Any]:
    """The journal (empty when nothing was recorded yet)."""
    p = path(state_dir)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        return {"actions": {}, "totals": {}}
    except ValueError as e:
        raise FormatError(f"{p} is not valid JSON: {e}",
                          hint="remove it; it only holds the last result of each action") from e
    if not isinstance(raw, dict):
        raise FormatError(f"{p} is not an action journal")
    raw.setdefault("actions", {})
    raw.setdefault("totals", {})
    return raw


def record(state_dir: Path, action: str, *, ok: bool, at_ms: int, volume: str | None = None,
           error: str | None = None, detail: Mapping[str, Any] | None = None,
           add: Mapping[str, int] | None = None) -> None:
    """Note that `action` (on `volume`) succeeded or failed at `at_ms`; add `add` to totals."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    p = path(state_dir)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p.parent / ".actions.lock", "a+") as lk:
        fcntl.flock(lk.fileno(), fcntl.LOCK_EX)
        j = read(state_dir)
        key = f"{action}:{volume}" if volume else action
        e = j["actions"].setdefault(key, {})
        if ok:
            e["ok_ms"] = at_ms
        else:
            e["fail_ms"] = at_ms
            e["error"] = error or "failed"
        if detail is not None:
            e["detail"] = dict(detail)
        for k, n in (add or {}).items():
            j["totals"][k] = int(j["totals"].get(k, 0)) + int(n)
        write_atomic(p, json.dumps(j, sort_keys=True, indent=1, default=str) + "\n")


def failing(j: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """(action key, failed at ms, error) of every action whose last run failed, oldest first."""
    out = []
    for key, e in j.get("actions", {}).items():
        fail = e.get("fail_ms")
        if fail is not None and fail > e.get("ok_ms", -1):
            out.append((key, int(fail), str(e.get("error", "failed"))))
    return sorted(out, key=lambda t: t[1])
