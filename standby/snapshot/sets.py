"""The library behind `standby snapshot ...`: take a set or a redolog snapshot, list the catalog,
verify a manifest. Each function composes the real effects from settings (backends, the store's
redo position, its MariaDB, the clock) unless the caller passes them in (tests, the benchmark).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from standby import timefmt
from standby.errors import StateConflict
from standby.settings import Settings
from standby.snapshot import factory, manifest
from standby.snapshot._base import SnapshotBackend
from standby.snapshot.catalog import Catalog
from standby.snapshot.execute import Effects, Outcome, execute
from standby.snapshot.manifest import Manifest
from standby.snapshot.plan import Plan, plan
from standby.snapshot.quiesce import Database
from standby.snapshot.redo import now_ms, open_source


def catalog_for(s: Settings) -> Catalog:
    return Catalog(s.state_dir, s.server_id, manifest.require_key(s.snapshot.manifest_key))


def take(kind: str, s: Settings, *, atomic: bool | None = None, stagger_s: float | None = None,
         quiesce_db: bool | None = None, dry_run: bool = False,
         backends: Mapping[str, SnapshotBackend] | None = None,
         ec2: Callable[[], Any] | None = None, clock_ms: Callable[[], int] = now_ms,
         sleep: Callable[[float], None] = time.sleep) -> Plan | Outcome:
    """Plan a set (`kind="set"`) or a redolog snapshot, and unless `dry_run` take it."""
    from standby.store.service import mariadb_for

    sn = s.snapshot
    cat = catalog_for(s)
    bes = dict(backends) if backends is not None else factory.backends(s, ec2=ec2)
    vols = factory.volumes(s)
    db = mariadb_for(s)
    db_running = db.running()

    def make_plan() -> Plan:
        p = plan(kind, server_id=s.server_id, prefix=sn.prefix, volumes=vols,
                 backend_of={n: v.backend for n, v in s.volumes.items()}, backends=bes,
                 catalog=cat, now_ms=clock_ms(),
                 atomic=sn.atomic if atomic is None else atomic,
                 stagger_s=sn.stagger_s if stagger_s is None else stagger_s,
                 quiesce_db=sn.quiesce_db if quiesce_db is None else quiesce_db,
                 db_running=db_running, pre_hook=sn.pre_hook, post_hook=sn.post_hook,
                 hook_timeout_s=sn.hook_timeout_s)
        if cat.exists(kind, p.id):
            raise StateConflict(f"a manifest {p.id} already exists", hint="retry")
        return p

    if dry_run:
        return make_plan()
    with cat.run_lock():
        p = make_plan()
        redo = open_source(s, clock=clock_ms)
        try:
            fx = Effects(backends=bes, volumes=vols, catalog=cat, redo=redo,
                         db=Database(db.connect) if db_running else None, clock_ms=clock_ms,
                         sleep=sleep, freeze_timeout_s=sn.freeze_timeout_s,
                         db_clean_timeout_s=sn.db_clean_timeout_s)
            return execute(p, fx)
        finally:
            redo.close()


def listing(s: Settings) -> list[dict[str, Any]]:
    """One row per manifest, oldest first (every manifest verified on the way)."""
    cat = catalog_for(s)
    shipped = cat.shipped()
    rows = []
    for m in cat.manifests():
        rows.append({
            "id": m.id, "kind": m.kind, "status": m.status, "atomic": m.atomic,
            "taken_at_ms": m.taken_at_ms, "taken_at": timefmt.gmt_stamp(m.taken_at_ms),
            "skew_ms": m.skew_ms, "window_ms": m.window_ms, "stagger_s": m.stagger_s,
            "volumes": [x.volume for x in m.snapshots],
            "shipped": [x.volume for x in m.snapshots if f"{m.id}/{x.volume}" in shipped],
            "replay": m.replay.as_dict(), "errors": list(m.errors),
        })
    return rows


def verify(path: Path, s: Settings) -> Manifest:
    return manifest.read(path, manifest.require_key(s.snapshot.manifest_key))


def replay_start(s: Settings, set_id: str) -> tuple[int, int]:
    """(from_time_ms, from_seq) where a replay onto set `set_id` (or "latest") must start.

    Every transaction active at the set's recorded position has its change record in the file
    of that sequence (a rollover re-logs active transactions), so reading from that file with
    the recorded time is exact; the replay's per-volume idempotency absorbs any op before it.
    """
    from standby.errors import NotFound

    cat = catalog_for(s)
    sets = [m for m in cat.manifests("set") if m.status == "complete"]
    if set_id == "latest":
        if not sets:
            raise NotFound("there is no complete snapshot set in the catalog",
                           hint="`standby snapshot list` shows what there is")
        m = max(sets, key=lambda x: x.taken_at_ms)
    else:
        m = cat.get(set_id)
        if m.kind != "set" or m.status != "complete":
            raise NotFound(f"{set_id} is not a complete snapshot set ({m.kind}, {m.status})")
    return m.replay.from_time_ms, m.replay.seq
