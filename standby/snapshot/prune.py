"""`standby snapshot prune`: apply retention to the catalog.

The decision is `retention.plan_retention` (pure; written beside this module). Here: build one
`RetentionItem` per complete manifest (a set, or a redolog snapshot; shipped when every one of
its snapshots is; parent = the previous manifest of the same kind), ask the planner, and unless
`dry_run` destroy every snapshot of each manifest to prune, oldest first, then remove its
manifest. A manifest whose snapshots cannot all be destroyed stays in the catalog and the error
is reported (the next run tries again). Leftovers of incomplete (failed) runs are always
removed: nothing can replay from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from standby import log as slog
from standby.catalog import local
from standby.catalog.local import LocalCatalog
from standby.catalog.manifest import Manifest
from standby.errors import StandbyError
from standby.settings import Settings
from standby.snapshot import factory
from standby.snapshot._base import Snapshot, SnapshotBackend
from standby.snapshot.retention import RetentionItem, RetentionPlan, RetentionPolicy, plan_retention
from standby.timefmt import now_ms as clock_now_ms

Planner = Callable[[Sequence[RetentionItem], RetentionPolicy, int], RetentionPlan]


@dataclass
class PruneResult:
    dry_run: bool
    keep: dict[str, list[str]]
    prune: list[str]
    held: dict[str, str]
    incomplete: list[str]
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def items_for(manifests: Sequence[Manifest], shipped: Mapping[str, int]) -> list[RetentionItem]:
    out = []
    last: dict[str, str] = {}
    for m in sorted(manifests, key=lambda m: (m.taken_at_ms, m.id)):
        if m.status != "complete":
            continue
        out.append(RetentionItem(
            id=m.id, kind=m.kind, taken_at_ms=m.taken_at_ms,
            shipped=all(f"{m.id}/{s.volume}" in shipped for s in m.snapshots),
            volume="set" if m.kind == "set" else "redolog", parent=last.get(m.kind)))
        last[m.kind] = m.id
    return out


def policy_for(s: Settings) -> RetentionPolicy:
    r = s.retention
    return RetentionPolicy(hourly=r.hourly, daily=r.daily, weekly=r.weekly, monthly=r.monthly,
                           redolog_keep=r.redolog_keep, redolog_max_age_s=r.redolog_max_age_s)


def prune(s: Settings, *, dry_run: bool = False, planner: Planner = plan_retention,
          policy: RetentionPolicy | None = None, now_ms: int | None = None,
          backends: Mapping[str, SnapshotBackend] | None = None,
          ec2: Callable[[], Any] | None = None,
          items: Callable[[Sequence[Manifest], Mapping[str, int]],
                          list[RetentionItem]] = items_for
          ) -> PruneResult:
    cat = local.for_settings(s)
    with cat.run_lock():
        manifests = cat.manifests()
        by_id = {m.id: m for m in manifests}
        the_plan = planner(
            items(manifests, cat.shipped()), policy if policy is not None else policy_for(s),
            now_ms if now_ms is not None else clock_now_ms())
        incomplete = [m.id for m in manifests if m.status != "complete"]
        res = PruneResult(dry_run=dry_run,
                          keep={k: list(v) for k, v in the_plan.keep.items()},
                          prune=list(the_plan.prune), held=dict(the_plan.held),
                          incomplete=incomplete)
        if dry_run:
            return res
        bes: dict[str, SnapshotBackend] = dict(backends or {})
        for mid in [*incomplete, *the_plan.prune]:
            m = by_id[mid]
            if _remove(cat, m, bes, s, ec2, res):
                res.removed.append(mid)
        return res


def _remove(cat: LocalCatalog, m: Manifest, bes: dict[str, SnapshotBackend], s: Settings,
            ec2: Callable[[], Any] | None, res: PruneResult) -> bool:
    log = slog.get("standby.snapshot.prune", set_id=m.id)
    ok = True
    for rec in m.snapshots:
        try:
            be = bes.get(rec.backend)
            if be is None:
                be = bes[rec.backend] = factory.backend(rec.backend, s, ec2=ec2)
            be.destroy(Snapshot(rec.volume, rec.backend, rec.name, rec.ref, rec.identity))
            log.info("snapshot_pruned", volume=rec.volume, snapshot=rec.ref)
        except StandbyError as e:
            ok = False
            res.errors.append(f"{m.id}/{rec.volume}: {e}")
            log.error("prune_failed", volume=rec.volume, snapshot=rec.ref, error=str(e))
    if ok:
        cat.remove(m)
    return ok
