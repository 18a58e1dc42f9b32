"""The library behind `standby snapshot ...`: plan or take a set or a redolog snapshot, list the
catalog, verify a manifest. Each function composes the real effects from settings (backends, the
store's redo position, its MariaDB, the clock) unless the caller passes them in (tests, the
benchmark). What to take comes from `[snapshot]` in the settings alone: command-line flags are
merged into them at the CLI edge (`settings.with_overrides`), where they are validated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from standby import timefmt
from standby.catalog import local, manifest
from standby.catalog.local import LocalCatalog
from standby.catalog.manifest import Manifest
from standby.errors import StateConflict
from standby.settings import Settings
from standby.snapshot import factory
from standby.snapshot._base import SnapshotBackend, Volume
from standby.snapshot.execute import Effects, Outcome, execute
from standby.snapshot.plan import Plan, plan
from standby.snapshot.quiesce import Database
from standby.snapshot.redo import open_source
from standby.store.site import Site
from standby.timefmt import now_ms


@dataclass(frozen=True)
class _Parts:
    catalog: LocalCatalog
    backends: dict[str, SnapshotBackend]
    volumes: dict[str, Volume]
    site: Site
    db_running: bool


def _parts(s: Settings, backends: Mapping[str, SnapshotBackend] | None,
           ec2: Callable[[], Any] | None) -> _Parts:
    site = Site(s)
    return _Parts(local.for_settings(s),
                  dict(backends) if backends is not None else factory.backends(s, ec2=ec2),
                  factory.volumes(s), site, site.db.running())


def _plan(kind: str, s: Settings, parts: _Parts, now: int) -> Plan:
    sn = s.snapshot
    p = plan(kind, server_id=s.server_id, prefix=sn.prefix, volumes=parts.volumes,
             backend_of={n: v.backend for n, v in s.volumes.items()}, backends=parts.backends,
             catalog=parts.catalog, now_ms=now, atomic=sn.atomic, stagger_s=sn.stagger_s,
             quiesce_db=sn.quiesce_db, db_running=parts.db_running, pre_hook=sn.pre_hook,
             post_hook=sn.post_hook, hook_timeout_s=sn.hook_timeout_s)
    if parts.catalog.exists(kind, p.id):
        raise StateConflict(f"a manifest {p.id} already exists", hint="retry")
    return p


def plan_take(kind: str, s: Settings, *, backends: Mapping[str, SnapshotBackend] | None = None,
              ec2: Callable[[], Any] | None = None,
              clock_ms: Callable[[], int] = now_ms) -> Plan:
    """What `take(kind, s)` would do now (the dry run): a set (`kind="set"`) or a redolog
    snapshot, as `[snapshot]` in `s` says (flags are merged into `s` by the caller)."""
    return _plan(kind, s, _parts(s, backends, ec2), clock_ms())


def take(kind: str, s: Settings, *, backends: Mapping[str, SnapshotBackend] | None = None,
         ec2: Callable[[], Any] | None = None, clock_ms: Callable[[], int] = now_ms,
         sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Take a set or a redolog snapshot: plan it under the catalog's run lock, then run it."""
    sn = s.snapshot
    parts = _parts(s, backends, ec2)
    with parts.catalog.run_lock():
        p = _plan(kind, s, parts, clock_ms())
        redo = open_source(s, clock=clock_ms)
        try:
            fx = Effects(backends=parts.backends, volumes=parts.volumes, catalog=parts.catalog,
                         redo=redo, db=Database(parts.site.db.connect) if parts.db_running
                         else None, clock_ms=clock_ms, sleep=sleep,
                         freeze_timeout_s=sn.freeze_timeout_s,
                         db_clean_timeout_s=sn.db_clean_timeout_s)
            return execute(p, fx)
        finally:
            redo.close()


def listing(s: Settings) -> list[dict[str, Any]]:
    """One row per manifest, oldest first (every manifest verified on the way)."""
    cat = local.for_settings(s)
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
