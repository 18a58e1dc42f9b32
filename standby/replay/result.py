"""The outcome of a replay, per volume, as the `--json` summary reports it, and `OpCounts`, the
one definition of what "applied", "skipped" and "not selected" mean, for both engines.

Both engines tally, for each op they go through, one outcome per volume (`db`, `blob`, `index`:
the change-number gate of each volume decides on its own). Every mailbox op passes the
database's gate, so an op's fate is the database's outcome: applied, skipped (the database
already had it), missing (its mailbox is not on the target) or error. The blob and index volumes
may still catch up on an op the database had; their own counts say so.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def not_selected(player: Mapping[str, Any]) -> int:
    """Committed ops the selection left out, from the player's statistics (`PlayStats`)."""
    return int(player.get("filtered_time", 0)) + int(player.get("filtered_mailbox", 0))


@dataclass(frozen=True)
class OpCounts:
    """What became of the committed ops of the logs read."""

    selected: int  # the selection picked it and the engine went through it
    applied: int  # the database applied it
    skipped: int  # already present: the database's change number was at or past it
    missing: int  # its mailbox is not on the target
    failed: int
    # Committed, in the files read, but outside --fromTime/--toTime or --mailboxId (a file
    # skipped whole for its header's times is not read: the notes name it).
    not_selected: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ReplayResult:
    engine: str = "naive"
    ops_read: int = 0
    ops_applied: int = 0
    db: Counter[str] = field(default_factory=Counter)
    blob: Counter[str] = field(default_factory=Counter)
    index: Counter[str] = field(default_factory=Counter)
    by_op: Counter[str] = field(default_factory=Counter)
    not_applied: Counter[str] = field(default_factory=Counter)  # ops outside the store, by name
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

    @property
    def counts(self) -> OpCounts:
        return OpCounts(selected=self.ops_applied, applied=self.db["applied"],
                        skipped=self.db["skipped"], missing=self.db["missing"],
                        failed=self.db["error"], not_selected=not_selected(self.player))

    def not_applied_text(self) -> str:
        """"not applied: CreateInvite ×12, CreateNote ×1" (empty when every op applied)."""
        if not self.not_applied:
            return ""
        return "not applied: " + ", ".join(f"{name} ×{n}" for name, n in
                                            sorted(self.not_applied.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "files": self.files,
            "ops_read": self.ops_read,
            # Kept under its old name: the ops the engine went through (the rate's numerator),
            # applied or not; "ops" says what became of them.
            "ops_applied": self.ops_applied,
            "ops": self.counts.as_dict(),
            "ops_per_s": round(self.ops_applied / self.seconds, 1) if self.seconds else None,
            "seconds": round(self.seconds, 3),
            "db": dict(self.db), "blob": dict(self.blob), "index": dict(self.index),
            "by_op": dict(sorted(self.by_op.items())),
            "not_applied": dict(sorted(self.not_applied.items())),
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
