"""`standby ship`: plan what a target lacks, then send it — sets first, then redolog snapshots.

The plan is made from one listing of the target (its catalog is the truth of what is there)
and the local catalog: for every complete manifest, oldest first, sets before redolog snapshots,
each volume's snapshot the target has no record of is a step,

- **incremental** from the newest snapshot of that volume the target holds that is older than
  it (and, for zfs/btrfs streams, still on this host: `send -i` needs both ends), or
- **full** when there is none (or `--full`); for a receiving target (zfs, btrfs) a snapshot
  older than one it already holds is skipped as superseded (a receive cannot go back);

and after the steps of a manifest, writing that manifest to the target. `--dry-run` prints the
plan (with the bytes each step is estimated to send).

Executing sends each step through the target (`Target.send`), writes the snapshot's record at
the target (from then on it counts as shipped), marks it shipped for that target in the local
state, and writes each manifest after its last volume. One run per target at a time (a lock in
`<state_dir>/transfer/<target>/`), where the resume state of interrupted uploads is kept too.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby import log as slog
from standby import timefmt, words
from standby.catalog import local
from standby.catalog.local import LocalCatalog
from standby.fsutil import write_atomic
from standby.catalog.manifest import Manifest, SnapshotRecord
from standby.catalog.target import Shipment, taken_ms_of
from standby.errors import FormatError, StateConflict, UsageError
from standby.settings import Settings
from standby.snapshot import factory as backends_factory
from standby.snapshot._base import Snapshot, SnapshotBackend
from standby.transfer._base import (
    Progress,
    SendJob,
    Source,
    Target,
    TargetUrl,
    TransferEffects,
    WriteStats,
    quoted,
)
from standby.transfer.throttle import Throttle, parse_rate


@dataclass(frozen=True)
class Step:
    manifest_id: str
    kind: str  # set | redolog
    volume: str  # a volume, or "" for the step that writes the manifest
    backend: str = ""
    mode: str = ""  # full | incremental | manifest
    parent: str | None = None
    estimate_bytes: int | None = None

    def describe(self) -> str:
        if not self.volume:
            return f"write the manifest of {self.kind} {self.manifest_id}"
        how = "full" if self.parent is None else f"incremental from {self.parent}"
        size = "" if self.estimate_bytes is None else f", about {words.size(self.estimate_bytes)}"
        return f"send {self.volume} of {self.manifest_id} [{self.backend}] {how}{size}"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ShipPlan:
    target: str
    steps: tuple[Step, ...]
    skipped: tuple[str, ...] = ()  # what is not sent, and why

    def describe(self) -> list[str]:
        if not self.steps:
            lines = [f"{self.target} has everything this host has shipped or can ship"]
        else:
            lines = [f"ship to {self.target}:"]
            lines += [f"  {i}. {s.describe()}" for i, s in enumerate(self.steps, 1)]
        lines += [f"  skipped: {s}" for s in self.skipped]
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "steps": [s.as_dict() for s in self.steps],
                "skipped": list(self.skipped)}


@dataclass
class ShipResult:
    target: str
    shipped: list[dict[str, Any]] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def stored_bytes(self) -> int:
        return sum(int(r["stored_bytes"]) for r in self.shipped)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "shipped": self.shipped, "manifests": self.manifests,
                "skipped": self.skipped, "stored_bytes": self.stored_bytes,
                "plain_bytes": sum(int(r["plain_bytes"]) for r in self.shipped),
                "seconds": round(self.seconds, 3)}


def _ordered(manifests: list[Manifest]) -> list[Manifest]:
    done = [m for m in manifests if m.status == "complete"]
    key = lambda m: (m.taken_at_ms, m.id)  # noqa: E731
    return sorted([m for m in done if m.kind == "set"], key=key) + sorted(
        [m for m in done if m.kind == "redolog"], key=key)


def as_snapshot(rec: SnapshotRecord) -> Snapshot:
    return Snapshot(rec.volume, rec.backend, rec.name, rec.ref, rec.identity)


class Backends:
    """Snapshot backends by name, made on first use from the settings."""

    def __init__(self, s: Settings, given: Mapping[str, SnapshotBackend] | None = None) -> None:
        self.s = s
        self.made: dict[str, SnapshotBackend] = dict(given or {})

    def __call__(self, name: str) -> SnapshotBackend:
        if name not in self.made:
            self.made[name] = backends_factory.backend(name, self.s)
        return self.made[name]


def plan(target: Target, catalog: LocalCatalog, backend: Callable[[str], SnapshotBackend], *,
         full: bool = False, receiving: bool = False, estimate: bool = False) -> ShipPlan:
    """What `target` lacks of `catalog`'s complete manifests (see the module docstring); with
    `estimate`, how many bytes each step sends (for `--dry-run`: it reads each snapshot's
    file list or asks `zfs send -nP`)."""
    listing = target.catalog.listing(fresh=True)
    there: dict[str, list[str]] = {}
    for vol, mid in listing.records:
        there.setdefault(vol, []).append(mid)
    steps: list[Step] = []
    skipped: list[str] = []
    mine = catalog.manifests()
    by_id = {m.id: m for m in mine}
    for m in _ordered(mine):
        todo: list[Step] = []
        for rec in m.snapshots:
            if (rec.volume, m.id) in listing.records:
                continue
            why = target.refuses(rec.backend)
            if why:
                raise UsageError(f"cannot ship the {rec.volume} snapshot of {m.id} to "
                                 f"{target.url}: {why}")
            older = sorted((x for x in there.get(rec.volume, []) if _before(x, m.id)),
                           key=taken_ms_of)
            if receiving and any(_before(m.id, x) for x in there.get(rec.volume, [])):
                skipped.append(f"{rec.volume} of {m.id}: the target holds a newer {rec.volume} "
                               "snapshot, and a receive cannot go back")
                continue
            parent = None if full else _parent(older, rec, by_id, backend,
                                               local_needed=target.needs_local_parent(
                                                   rec.backend))
            size = None
            if estimate:
                src = Source(m.id, m.kind, rec, backend(rec.backend), as_snapshot(rec))
                prec = by_id[parent].snapshot(rec.volume) if parent in by_id else None
                size = target.estimate(src, None if parent is None else (
                    _record_of(target, rec.volume, parent),
                    as_snapshot(prec) if prec is not None else None))
            todo.append(Step(m.id, m.kind, rec.volume, rec.backend,
                             "full" if parent is None else "incremental", parent, size))
            there.setdefault(rec.volume, []).append(m.id)
        complete = all((r.volume, m.id) in listing.records or any(
            s.volume == r.volume for s in todo) for r in m.snapshots)
        steps += todo
        if complete and m.id not in listing.manifests:
            steps.append(Step(m.id, m.kind, "", mode="manifest"))
    return ShipPlan(str(target.url), tuple(steps), tuple(skipped))


def _before(a: str, b: str) -> bool:
    return (taken_ms_of(a), a) < (taken_ms_of(b), b)


def _parent(older: list[str], rec: SnapshotRecord, by_id: Mapping[str, Manifest],
            backend: Callable[[str], SnapshotBackend], *, local_needed: bool) -> str | None:
    """The newest of `older` (at the target) an incremental can start from."""
    for mid in reversed(older):
        if not local_needed:
            return mid
        m = by_id.get(mid)  # a parent pruned here cannot be the `send -i` base
        prec = m.snapshot(rec.volume) if m is not None else None
        if prec is not None and prec.backend == rec.backend and backend(
                prec.backend).exists(as_snapshot(prec)):
            return mid
    return None


def _record_of(target: Target, volume: str, mid: str) -> Shipment | None:
    """The target's record of a parent; None when it is only planned in this run."""
    if (volume, mid) in target.catalog.listing().records:
        return target.catalog.record(volume, mid)
    return None


# --------------------------------------------------------------------------------------------
# Local state per target: the run lock and the resume state of interrupted uploads


class TargetState:
    """`<state_dir>/transfer/<target>/`: `.lock` (one run at a time), `uploads.json`."""

    def __init__(self, state_dir: Path, target: TargetUrl) -> None:
        self.dir = state_dir / "transfer" / quoted(target)
        self.path = self.dir / "uploads.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise FormatError(f"{self.path} is not valid JSON: {e}",
                              hint="remove it: interrupted uploads then start again") from e
        return dict(data) if isinstance(data, dict) else {}

    def get(self, key: str) -> Mapping[str, Any] | None:
        return self.load().get(key) or None

    def put(self, key: str, st: dict[str, Any]) -> None:
        data = self.load()
        if st:
            data[key] = st
        elif key not in data:
            return
        else:
            del data[key]
        write_atomic(self.path, json.dumps(data, sort_keys=True, indent=1).encode() + b"\n")

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as lk:
            try:
                fcntl.flock(lk.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateConflict(f"another standby run is using the target {self.dir.name}",
                                    hint="wait for it to finish (cron may have started it)"
                                    ) from None
            yield


# --------------------------------------------------------------------------------------------
# Executing


def effects(s: Settings, target: Target, state: TargetState, *, bwlimit: str | None = None,
            progress: Callable[[Progress], None] | None = None) -> TransferEffects:
    rate = bwlimit or s.target.bwlimit
    throttle = Throttle(parse_rate(rate) if rate else None)
    return TransferEffects(now_ms=timefmt.now_ms, throttle=throttle.take,
                           progress=progress or (lambda p: None), totals=progress is not None,
                           resume_get=state.get, resume_put=state.put)


def execute(p: ShipPlan, target: Target, catalog: LocalCatalog,
            backend: Callable[[str], SnapshotBackend], fx: TransferEffects) -> ShipResult:
    log = slog.get("standby.transfer.ship", target=p.target)
    res = ShipResult(p.target, skipped=list(p.skipped))
    t0 = time.monotonic()
    sent: dict[tuple[str, str], Shipment] = {}
    manifests: dict[str, Manifest] = {}
    for step in p.steps:
        m = manifests.get(step.manifest_id) or catalog.get(step.manifest_id)
        manifests[m.id] = m
        if not step.volume:
            target.catalog.write(m)
            res.manifests.append(m.id)
            log.info("manifest_shipped", set_id=m.id, kind=m.kind)
            continue
        rec = m.snapshot(step.volume)
        assert rec is not None
        parent = None
        parent_snap = None
        if step.parent is not None:
            parent = sent.get((step.volume, step.parent)) or target.catalog.record(
                step.volume, step.parent)
            pm = manifests.get(step.parent) or catalog.get(step.parent)
            prec = pm.snapshot(step.volume)
            parent_snap = as_snapshot(prec) if prec is not None else None
        t = time.monotonic()
        src = Source(m.id, m.kind, rec, backend(rec.backend), as_snapshot(rec))
        r = target.send(SendJob(src, parent, parent_snap, fx))
        target.catalog.write_record(r)
        catalog.mark_shipped(m.id, step.volume, at_ms=r.shipped_ms, target=p.target)
        sent[(step.volume, m.id)] = r
        keys = [o.key for o in r.objects] or ([r.received] if r.received else [])
        stats = [fx.stats.get(k, WriteStats()) for k in keys]
        row = {"manifest": m.id, "kind": m.kind, "volume": step.volume, "mode": step.mode,
               "parent": step.parent, "stored_bytes": sum(o.size for o in r.objects),
               # a received stream's bytes, or the objects' plain bytes
               "plain_bytes": sum(o.plain_bytes for o in r.objects) or sum(
                   x.bytes_sent for x in stats),
               "objects": len(r.objects) or (1 if r.received else 0),
               "parts_sent": sum(x.parts_sent for x in stats),
               "parts_skipped": sum(x.parts_skipped for x in stats),
               "resumed": any(x.resumed for x in stats),
               "seconds": round(time.monotonic() - t, 3)}
        res.shipped.append(row)
        log.info("snapshot_shipped", **row)
    res.seconds = time.monotonic() - t0
    return res


def ship(s: Settings, target: Target, *, dry_run: bool = False, full: bool = False,
         bwlimit: str | None = None, backends: Mapping[str, SnapshotBackend] | None = None,
         progress: Callable[[Progress], None] | None = None) -> ShipPlan | ShipResult:
    """Plan (and unless `dry_run` execute) shipping the local catalog to `target`."""
    catalog = local.for_settings(s)
    be = Backends(s, backends)
    state = TargetState(s.state_dir, target.url)
    target.check(write=not dry_run)
    with state.lock():
        p = plan(target, catalog, be, full=full,
                 receiving=target.url.scheme in ("zfs", "btrfs"), estimate=dry_run)
        if dry_run:
            return p
        return execute(p, target, catalog, be, effects(s, target, state, bwlimit=bwlimit,
                                                           progress=progress))
