"""Planning a set or a redolog snapshot: a list of frozen steps, printed by `--dry-run`.

The planner checks every volume against its backend first (dataset exists, file system fits,
program installed), so a bad configuration fails before anything is taken. Then it lays out:

    pre hook -> snapshot group 1 -> ... -> snapshot group N -> manifest -> post hook (always)

A *group* is what one backend call takes in one instant: one volume in a staggered set, or all
volumes of one ZFS pool / one EC2 instance with `--atomic`. Staggered groups are scheduled
`stagger_s` apart from the first one's start (so tool overhead does not add up). The db
volume's group says how MariaDB is held: made durable always, commits blocked with
`quiesce_db`, and, for a backend that copies (`dir`), quiesced until InnoDB is clean.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from standby import timefmt
from standby.catalog._base import CatalogStore, latest
from standby.errors import UsageError
from standby.settings import VOLUME_NAMES
from standby.snapshot._base import SnapshotBackend, Volume


@dataclass(frozen=True)
class HookStep:
    stage: str  # pre | post
    argv: tuple[str, ...]
    timeout_s: float

    def describe(self) -> str:
        always = " (always, also after a failure)" if self.stage == "post" else ""
        return (f"run {self.stage} hook `{shlex.join(self.argv)}` with a {self.timeout_s:g} s "
                f"limit{always}")


@dataclass(frozen=True)
class SnapshotStep:
    group: int
    volumes: tuple[str, ...]
    backend: str
    at_s: float  # when, after the first group's start
    freeze_store: bool  # the store is frozen during the call (backends that copy)
    db_hold: str  # "" | "durable" | "quiesce" | "quiesce+clean"
    commands: tuple[str, ...]

    def describe(self) -> str:
        what = ", ".join(self.volumes)
        parts = [f"at +{self.at_s:.3f} s: snapshot {what} [{self.backend}]"]
        if self.freeze_store:
            parts.append("store frozen during the copy")
        if self.db_hold == "durable":
            parts.append("MariaDB commits made durable first")
        elif self.db_hold == "quiesce":
            parts.append("MariaDB held with BACKUP STAGE BLOCK_COMMIT")
        elif self.db_hold == "quiesce+clean":
            parts.append("MariaDB held with BACKUP STAGE BLOCK_COMMIT until InnoDB is clean")
        head = "; ".join(parts)
        return head + "".join(f"\n      $ {c}" for c in self.commands)


@dataclass(frozen=True)
class ManifestStep:
    path: str

    def describe(self) -> str:
        return f"write the signed manifest {self.path}"


Step = HookStep | SnapshotStep | ManifestStep


@dataclass(frozen=True)
class Plan:
    kind: str  # set | redolog
    id: str
    name: str  # the snapshots' name
    server_id: str
    atomic: bool
    stagger_s: float
    quiesce_db: bool
    steps: tuple[Step, ...]
    parents: tuple[tuple[str, str | None], ...]  # (volume, "<manifest id>/<volume>")
    notes: tuple[str, ...] = ()

    @property
    def snapshot_steps(self) -> list[SnapshotStep]:
        return [s for s in self.steps if isinstance(s, SnapshotStep)]

    def describe(self) -> list[str]:
        head = (f"{self.kind} {self.id} on server {self.server_id}: "
                + ("atomic" if self.atomic else f"staggered {self.stagger_s:g} s apart"))
        lines = [head] + [f"  {i}. {s.describe()}" for i, s in enumerate(self.steps, 1)]
        lines += [f"  note: {n}" for n in self.notes]
        return lines

    def as_dict(self) -> dict[str, Any]:
        def step(s: Step) -> dict[str, Any]:
            return {"type": type(s).__name__, **s.__dict__}

        return {"kind": self.kind, "id": self.id, "name": self.name,
                "server_id": self.server_id, "atomic": self.atomic,
                "stagger_s": self.stagger_s, "quiesce_db": self.quiesce_db,
                "steps": [step(s) for s in self.steps], "parents": dict(self.parents),
                "notes": list(self.notes)}


def manifest_id(kind: str, now_ms: int) -> str:
    return f"{'set' if kind == 'set' else 'redolog'}-{timefmt.gmt_stamp(now_ms)}"


def plan(kind: str, *, server_id: str, prefix: str, volumes: Mapping[str, Volume],
         backend_of: Mapping[str, str], backends: Mapping[str, SnapshotBackend],
         catalog: CatalogStore, now_ms: int, atomic: bool, stagger_s: float, quiesce_db: bool,
         db_running: bool, pre_hook: tuple[str, ...] = (), post_hook: tuple[str, ...] = (),
         hook_timeout_s: float = 60.0) -> Plan:
    """Check the volumes and lay out the steps; nothing is taken here."""
    if kind not in ("set", "redolog"):
        raise UsageError(f"unknown snapshot kind {kind!r}")
    names = list(VOLUME_NAMES) if kind == "set" else ["redolog"]
    for n in names:
        backends[backend_of[n]].check(volumes[n])
    mid = manifest_id(kind, now_ms)
    name = f"{prefix}-{mid}"
    notes: list[str] = []
    atomic = atomic and kind == "set"
    groups = _groups(names, volumes, backend_of, backends, atomic=atomic)
    if atomic and len(groups) > 1:
        notes.append(f"--atomic: {len(groups)} instants ("
                     + "; ".join("+".join(g) for g in groups)
                     + "): volumes on different pools, instances or backends cannot share one")
    steps: list[Step] = []
    if pre_hook:
        steps.append(HookStep("pre", tuple(pre_hook), hook_timeout_s))
    for i, g in enumerate(groups):
        be = backends[backend_of[g[0]]]
        hold = ""
        if "db" in g:
            if not db_running:
                notes.append("the store's MariaDB is not running: the db volume is at rest, "
                             "nothing to quiesce")
            elif be.copies:
                hold = "quiesce+clean"
            else:
                hold = "quiesce" if quiesce_db else "durable"
        steps.append(SnapshotStep(
            group=i, volumes=tuple(g), backend=be.name,
            at_s=0.0 if atomic else round(i * stagger_s, 6), freeze_store=be.copies,
            db_hold=hold, commands=tuple(be.preview([volumes[n] for n in g], name))))
    steps.append(ManifestStep(catalog.location(kind, mid)))
    if post_hook:
        steps.append(HookStep("post", tuple(post_hook), hook_timeout_s))
    parents = tuple((n, _parent(catalog, kind, n)) for n in names)
    return Plan(kind=kind, id=mid, name=name, server_id=server_id, atomic=atomic,
                stagger_s=0.0 if atomic else stagger_s, quiesce_db=quiesce_db,
                steps=tuple(steps), parents=parents, notes=tuple(notes))


def _groups(names: list[str], volumes: Mapping[str, Volume], backend_of: Mapping[str, str],
            backends: Mapping[str, SnapshotBackend], *, atomic: bool) -> list[list[str]]:
    if not atomic:
        return [[n] for n in names]
    by_backend: dict[str, list[Volume]] = {}
    for n in names:
        by_backend.setdefault(backend_of[n], []).append(volumes[n])
    groups: list[list[str]] = []
    for be, vols in by_backend.items():
        groups += [[v.name for v in g] for g in backends[be].atomic_groups(vols)]
    order = {n: i for i, n in enumerate(names)}
    for g in groups:
        g.sort(key=order.__getitem__)
    return sorted(groups, key=lambda g: order[g[0]])


def _parent(catalog: CatalogStore, kind: str, volume: str) -> str | None:
    kinds = ("set", "redolog") if volume == "redolog" else ("set",)
    found = latest(catalog, volume, kinds)
    return f"{found[0].id}/{volume}" if found else None
