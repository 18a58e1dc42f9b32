"""`standby prune --target URL`: the tiers of `[retention]` at a target, chains intact.

The decision is `snapshot.prune.plan_chains` (pure): the manifests at the target are retention
items (all shipped, so the only holds are the newest set and the bases of the next incremental
sends), the records the chains. Snapshots the local catalog still has but whose manifest is not
at the target yet (a ship in progress, or one to be finished) count as kept.

Executing, under the target's run lock (no ship at the same time): first the manifests of the
sets and redolog snapshots no longer kept (from then on none can be pulled), then each record
that nothing kept depends on, leaves first and the oldest first — its record, then its data,
so that an interruption leaves only unreferenced objects, never a record without its data —
then objects no record lists (an interrupted ship's leftovers), then the streamed redo of logs
no kept set replays: those rolled over before the oldest kept set's replay sequence, less one
(a replay onto a set also reads the log before it for shared-delivery blobs). With
`target.object_lock` (the bucket keeps objects for a retention period) nothing is deleted and
the plan says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from standby import log as slog
from standby.catalog import local
from standby.catalog.manifest import Manifest
from standby.catalog.target import taken_ms_of
from standby.errors import NotFound, StandbyError
from standby.settings import Settings
from standby.snapshot.prune import ChainPlan, items_for, plan_chains, policy_for
from standby.timefmt import now_ms as clock_now_ms
from standby.transfer import stream_keys
from standby.transfer._base import Target
from standby.transfer.ship import TargetState


@dataclass
class TargetPruneResult:
    target: str
    dry_run: bool
    plan: ChainPlan
    unreferenced: list[str]
    stream: list[str] = field(default_factory=list)  # streamed redo no kept set needs
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "dry_run": self.dry_run, **self.plan.as_dict(),
                "unreferenced": self.unreferenced, "stream": self.stream,
                "removed": self.removed,
                "errors": self.errors, "note": self.note}


def prune(s: Settings, target: Target, *, dry_run: bool = False,
          now_ms: int | None = None) -> TargetPruneResult:
    log = slog.get("standby.transfer.prune", target=str(target.url))
    mine = local.for_settings(s)
    target.check(write=not dry_run)
    with TargetState(s.state_dir, target.url).lock():
        cat = target.catalog
        listing = cat.listing(fresh=True)
        manifests = cat.manifests()
        at_target = {m.id for m in manifests}
        shipped = {f"{m.id}/{x.volume}": 1 for m in manifests for x in m.snapshots}
        pending = [m.id for m in mine.manifests() if m.status == "complete"
                   and m.id not in at_target]
        age = {mid: _age(mid) for _v, mid in listing.records}
        p = plan_chains(items_for(manifests, shipped), dict(listing.records), policy_for(s),
                        now_ms if now_ms is not None else clock_now_ms(), age=age,
                        pending=pending)
        listed: set[str] = set()
        for vol, mid in listing.records:
            if (vol, mid) not in p.remove_records:
                listed.update(o.key for o in cat.record(vol, mid).objects)
        unreferenced = sorted(k for k in listing.objects if k not in listed and not any(
            k.startswith(f"data/{v}/{m}/") for v, m in p.remove_records))
        floor = stream_floor(manifests, set(p.remove_manifests))
        stream = [] if floor is None else stream_keys.expired(
            stream_keys.parse(target.catalog.store.list(stream_keys.PREFIX)), floor)
        res = TargetPruneResult(str(target.url), dry_run, p, unreferenced, stream)
        if s.target.object_lock:
            res.note = "target.object_lock is on: the bucket keeps its objects, nothing deleted"
            return res
        if dry_run:
            return res
        by_id = {m.id: m for m in manifests}
        for mid in p.remove_manifests:
            cat.remove(by_id[mid])
            res.removed.append(f"manifest {mid}")
            log.info("manifest_pruned", set_id=mid)
        for vol, mid in p.remove_records:
            try:
                r = cat.record(vol, mid)
                cat.remove_record(r)
                target.discard(r)
                mine.mark_shipped(mid, vol, shipped=False, target=str(target.url))
                res.removed.append(f"{vol} of {mid}")
                log.info("snapshot_pruned", set_id=mid, volume=vol)
            except NotFound:
                continue
            except StandbyError as e:
                res.errors.append(f"{vol} of {mid}: {e}")
                log.error("prune_failed", set_id=mid, volume=vol, error=str(e))
                break  # its parent must not go while it is still there
        for key in unreferenced + stream:
            try:
                target.catalog.store.delete(key)
                res.removed.append(key)
            except StandbyError as e:
                res.errors.append(f"{key}: {e}")
        return res


def stream_floor(manifests: list[Manifest], removed: set[str]) -> int | None:
    """The lowest log sequence a pull may still read streamed redo of: the oldest kept set's
    replay sequence, less one (its replay reads that log for shared-delivery blobs); None
    when no set is kept."""
    seqs = [m.replay.seq for m in manifests if m.kind == "set" and m.id not in removed]
    return min(seqs) - 1 if seqs else None


def _age(mid: str) -> int:
    try:
        return taken_ms_of(mid)
    except StandbyError:
        return 0
