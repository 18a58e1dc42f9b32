"""`standby pull` at the standby: a set and the newest redolog snapshot after it, onto its volumes.

Planning reads the target's catalog (every manifest and record it uses is verified: signature,
form, and that it sits where it belongs): the set (`--set ID`, or the newest complete one), the
newest manifest at or after it that holds a redolog snapshot (its redolog volume has every log
since the set: the log is append-only and archived), and for each volume the chain of records
from a full stream to the wanted snapshot. The standby's own volumes must be able to take those
streams (a `dir` stream lands in any folder; zfs and btrfs streams need that backend there).

Executing refuses while a store service or its MariaDB runs on the standby's volumes (and while
another pull runs). Then, in two steps, so nothing is applied before everything checked:

1. stage: every `dir` volume's chain is extracted into `<volume>/.standby-pull/`, each object's
   bytes checked against its record's sha256 as they arrive; every stream volume's objects are
   read and checked in full;
2. land, with the volumes marked incomplete (`store start` refuses them until it is done):
   staged folders are swapped in, streams received into the volumes' datasets.

Last, the two manifests are written to the standby's own catalog (what `zmplayredo --set
latest` reads: `standby pull && zmplayredo --set latest` is the failover), replacing what an
earlier pull put there, and `<state_dir>/pulled.json` says what the volumes hold.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from standby import log as slog
from standby import timefmt
from standby.catalog import local
from standby.catalog._base import find_set
from standby.fsutil import write_atomic
from standby.catalog.manifest import Manifest
from standby.catalog.target import Shipment
from standby.errors import NotFound, StateConflict, UsageError, VolumeError
from standby.settings import VOLUME_NAMES, Settings
from standby.snapshot import factory as backends_factory
from standby.snapshot._base import SnapshotBackend, StreamingBackend, Volume
from standby.store.site import Site
from standby.transfer._base import Landing, Progress, Target, TransferEffects
from standby.transfer import stream_pull
from standby.transfer.objects import ObjectTarget

STAGING = ".standby-pull"
PULLED = "pulled.json"
_NEEDS = {"tar": None, "zfs": "zfs", "btrfs": "btrfs"}


@dataclass(frozen=True)
class PullPlan:
    target: str
    set_manifest: Manifest
    redo_manifest: Manifest
    chains: dict[str, tuple[Shipment, ...]]  # volume -> records, full first

    @property
    def stored_bytes(self) -> int:
        return sum(o.size for c in self.chains.values() for r in c for o in r.objects)

    def describe(self) -> list[str]:
        lines = [f"pull from {self.target}: set {self.set_manifest.id} "
                 f"(taken {timefmt.gmt_stamp(self.set_manifest.taken_at_ms)} GMT), redolog "
                 f"volume as of {self.redo_manifest.id}"]
        for vol, chain in self.chains.items():
            steps = " -> ".join(("full " if r.parent is None else "") + r.manifest_id
                                for r in chain)
            size = sum(o.size for r in chain for o in r.objects)
            lines.append(f"  {vol:8s} {chain[-1].stream_format:5s} {steps} ({size} bytes "
                         "stored)")
        lines.append(f"  then: zmplayredo --set {self.set_manifest.id} (or --set latest) "
                     f"replays from seq {self.set_manifest.replay.seq}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "set": self.set_manifest.id,
                "redolog": self.redo_manifest.id,
                "replay_from_seq": self.set_manifest.replay.seq,
                "replay_from_time_ms": self.set_manifest.replay.from_time_ms,
                "chains": {v: [{"manifest": r.manifest_id, "parent": r.parent,
                                "format": r.stream_format,
                                "stored_bytes": sum(o.size for o in r.objects)} for r in c]
                           for v, c in self.chains.items()},
                "stored_bytes": self.stored_bytes}


def plan(target: Target, set_id: str = "latest") -> PullPlan:
    cat = target.catalog
    listing = cat.listing(fresh=True)
    set_m = find_set(cat, set_id)
    redo_m = None
    for m in cat.manifests():
        if m.status != "complete" or m.snapshot("redolog") is None:
            continue
        if ("redolog", m.id) not in listing.records or (m.taken_at_ms, m.id) < (
                set_m.taken_at_ms, set_m.id):
            continue
        if redo_m is None or (m.taken_at_ms, m.id) > (redo_m.taken_at_ms, redo_m.id):
            redo_m = m
    if redo_m is None:
        raise NotFound(f"set {set_m.id} at {target.url} has no redolog snapshot there",
                       hint="ship it again (`standby ship`)")
    chains: dict[str, tuple[Shipment, ...]] = {}
    for vol in VOLUME_NAMES:
        m = redo_m if vol == "redolog" else set_m
        if (vol, m.id) not in listing.records:
            raise NotFound(f"the {vol} snapshot of {m.id} is not at {target.url}",
                           hint="ship it again (`standby ship`)")
        chains[vol] = tuple(cat.record(vol, mid) for mid in listing.chain(vol, m.id))
    return PullPlan(str(target.url), set_m, redo_m, chains)


def _landings(sb: Settings, p: PullPlan,
              backend: Callable[[str], SnapshotBackend]) -> dict[str, Landing]:
    out: dict[str, Landing] = {}
    for vol, vs in sb.volumes.items():
        fmt = p.chains[vol][-1].stream_format
        need = _NEEDS.get(fmt)
        v = Volume(vol, vs.path, vs.dataset)
        if need is None:
            out[vol] = Landing(v, vs.backend)
            continue
        if vs.backend != need:
            raise UsageError(f"the {vol} snapshot is a {fmt} stream, and the standby's {vol} "
                             f"volume uses the {vs.backend} backend",
                             hint=f"make volumes.{vol} a {fmt} volume at the standby")
        be = backend(vs.backend)
        if not isinstance(be, StreamingBackend):
            raise UsageError(f"the {vs.backend} backend cannot receive streams")
        out[vol] = Landing(v, vs.backend, be, be.check)
    return out


def pull(sb: Settings, target: Target, p: PullPlan, *,
         progress: Callable[[Progress], None] = lambda x: None,
         backend: Callable[[str], SnapshotBackend] | None = None) -> dict[str, Any]:
    """Execute `p` onto the volumes of the standby's settings `sb` (see the module docstring)."""
    log = slog.get("standby.transfer.pull", target=p.target, set_id=p.set_manifest.id)
    site = Site(sb)
    site.check_stopped("standby pull")
    if site.db.running():
        raise StateConflict("Stop MariaDB before running standby pull: it runs on the standby's "
                            "db volume", hint="`standby store stop`")
    landings = _landings(sb, p, backend or (lambda name: backends_factory.backend(name, sb)))
    for lv in landings.values():
        if lv.backend != "zfs":  # a zfs volume's dataset is made and mounted by its receive
            _check_path(lv.volume)
    fx = TransferEffects(now_ms=timefmt.now_ms, progress=progress)
    t0 = time.monotonic()
    # Not the volumes lock: it is an open file on the redolog volume, and a zfs receive into
    # that dataset needs nothing open there. Another pull is kept out by this lock; a store,
    # by the replay marker while the volumes land.
    with _pull_lock(sb):
        for vol, chain in p.chains.items():
            target.stage(chain, landings[vol], landings[vol].volume.path / STAGING, fx)
            log.info("volume_staged", volume=vol, snapshots=len(chain))
        with site.replaying():
            for vol, chain in p.chains.items():
                target.land(chain, landings[vol], landings[vol].volume.path / STAGING, fx)
                log.info("volume_pulled", volume=vol, snapshot=chain[-1].manifest_id)
            # The streamed redo after the snapshot, while the replay marker still keeps a
            # store off these volumes.
            streamed = stream_pull.extend(sb, target) if isinstance(target, ObjectTarget) \
                else None
        _record(sb, p)
    out = {**p.as_dict(), "seconds": round(time.monotonic() - t0, 3),
           "stream": streamed.as_dict() if streamed is not None else None}
    log.info("pulled", seconds=out["seconds"], stored_bytes=p.stored_bytes)
    return out


def _check_path(v: Volume) -> None:
    p = v.path
    if not p.is_dir():
        raise VolumeError(f"volume {v.name}: {p} does not exist or is not a folder",
                          hint=f"create it, or fix volumes.{v.name}.path")
    if not os.access(p, os.W_OK | os.X_OK):
        raise VolumeError(f"volume {v.name}: {p} is not writable by this user")


@contextmanager
def _pull_lock(sb: Settings) -> Iterator[None]:
    sb.state_dir.mkdir(parents=True, exist_ok=True)
    with open(sb.state_dir / ".pull.lock", "a+") as lk:
        try:
            fcntl.flock(lk.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateConflict("another standby pull is running on these volumes",
                                hint="wait for it to finish") from None
        yield


def _record(sb: Settings, p: PullPlan) -> None:
    """The standby's catalog gets the pulled manifests (and loses an earlier pull's)."""
    cat = local.for_settings(sb)
    path = sb.state_dir / PULLED
    before = read_pulled(sb)
    for mid in before.get("manifests", []):
        if mid not in (p.set_manifest.id, p.redo_manifest.id):
            try:
                cat.remove(cat.get(mid))
            except NotFound:
                pass
    for m in {p.set_manifest.id: p.set_manifest, p.redo_manifest.id: p.redo_manifest}.values():
        cat.write(m)
    write_atomic(path, json.dumps({
        "target": p.target, "set": p.set_manifest.id, "redolog": p.redo_manifest.id,
        "manifests": sorted({p.set_manifest.id, p.redo_manifest.id}),
        "pulled_at": timefmt.iso_utc(timefmt.now_ms())}, indent=1).encode() + b"\n")


def read_pulled(sb: Settings) -> Mapping[str, Any]:
    try:
        return dict(json.loads((sb.state_dir / PULLED).read_text()))
    except (FileNotFoundError, ValueError):
        return {}
