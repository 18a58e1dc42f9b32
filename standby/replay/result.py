"""The outcome of a replay, per volume, as the `--json` summary reports it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReplayResult:
    engine: str = "naive"
    ops_read: int = 0
    ops_applied: int = 0
    db: Counter[str] = field(default_factory=Counter)
    blob: Counter[str] = field(default_factory=Counter)
    index: Counter[str] = field(default_factory=Counter)
    by_op: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    garbage_removed: int = 0
    seconds: float = 0.0
    player: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    phase_cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    parsed: int = 0
    documents: int = 0
    rows_loaded: int = 0
    index_mode: str = "now"
    documents_deferred: int = 0
    behind: dict[int, int] = field(default_factory=dict)  # mailbox -> documents pending

    def tally(self, op_name: str, db: str, blob: str, index: str) -> None:
        self.ops_applied += 1
        self.by_op[op_name] += 1
        self.db[db] += 1
        self.blob[blob] += 1
        self.index[index] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "files": self.files,
            "ops_read": self.ops_read,
            "ops_applied": self.ops_applied,
            "ops_per_s": round(self.ops_applied / self.seconds, 1) if self.seconds else None,
            "seconds": round(self.seconds, 3),
            "db": dict(self.db), "blob": dict(self.blob), "index": dict(self.index),
            "by_op": dict(sorted(self.by_op.items())),
            "garbage_removed": self.garbage_removed,
            "errors": len(self.errors), "error_samples": self.errors[:10],
            "player": self.player, "notes": self.notes,
            "worker_seconds": {k: round(v, 2) for k, v in self.phase_seconds.items()},
            "worker_cpu_seconds": {k: round(v, 2) for k, v in self.phase_cpu.items()},
            "messages_parsed": self.parsed,
            "documents_indexed": self.documents,
            "rows_loaded": self.rows_loaded,
            "phases": self.phases(),
        }

    def phases(self) -> dict[str, Any]:
        """Phase one (mail: db and blob, done) and phase two (the index: done inline with
        `now`; with `defer`, what the catch-up still has to do)."""
        mail = {"state": "done", "seconds": round(self.seconds, 3)}
        if self.index_mode == "now":
            index: dict[str, Any] = {"mode": "now", "state": "done"}
        else:
            index = {"mode": "defer", "state": "behind" if self.behind else "done",
                     "mailboxes_behind": len(self.behind),
                     "documents_pending": sum(self.behind.values()),
                     "next": "standby index catch-up, or start the store (it catches up in "
                             "the background)" if self.behind else None}
        return {"mail": mail, "index": index}
