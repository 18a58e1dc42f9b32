"""`standby drill`: the main job on embedded defaults, a failover rehearsed end to end.

1. A primary store is built in a work folder (the four volumes as folders, the `dir` snapshot
   backend, a private MariaDB) and mail traffic is driven at it.
2. On a time-compressed cadence (a set every `set_every_s`, a redolog snapshot every
   `redolog_every_s`), snapshots are taken and shipped (`Shipping.ship`).
3. At a random moment the primary is killed (SIGKILL, the store service and its MariaDB).
4. Failover: the standby's volumes are pulled from the newest shipped set and the newest
   shipped redolog snapshot (`Shipping.pull`), and the redo log is replayed from the set's
   recorded start with `--index defer` (mail first), then the index is caught up.
5. Proof: the standby's digest must equal the digest of a store built by replaying, from empty,
   everything the pulled redolog volume holds — the primary as of the last shipped position:
   db and blob right after the replay, the index once the catch-up is done.

`Shipping` is the one seam between the drill and how snapshots travel: today `FolderCopy`
copies each snapshot into a site folder and back (standing in for the network); shipping to a
real target fills the same two calls.
It reports RPO (kill time minus the last shipped redo position's time), RTO for mail
(`rto_mail_s`, kill to db and blob forward: a standby ready to start; also `rto_s`) and for
search (`rto_search_s`, kill to the index caught up), the replay rate, and how many committed ops
the primary had that never shipped.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from standby import settings as settings_mod
from standby import timefmt
from standby.catalog import local
from standby.catalog.local import LocalCatalog
from standby.catalog.manifest import Manifest
from standby.errors import StandbyError
from standby.redolog.ops import StoreIncomingBlob
from standby.replay import catchup, engine
from standby.replay.player import Player, Selection, select_files
from standby.snapshot import sets
from standby.store import control, loadgen
from standby.store.digest import digest_site
from standby.store.site import LOCK_NAME, Site

VOLUMES = settings_mod.VOLUME_NAMES


@dataclass
class DrillReport:
    workdir: str = ""
    accounts: int = 0
    load_actions: int = 0
    sets: int = 0
    redolog_snapshots: int = 0
    killed_at: str = ""
    last_shipped: str = ""
    rpo_s: float = 0.0
    rto_s: float = 0.0  # = rto_mail_s
    rto_mail_s: float = 0.0
    rto_search_s: float = 0.0
    catchup_s: float = 0.0
    catchup_documents: int = 0
    restore_s: float = 0.0
    replay_s: float = 0.0
    replay_ops: int = 0
    replay_ops_per_s: float = 0.0
    ops_never_shipped: int = 0
    standby_digest: str = ""
    reference_digest: str = ""
    equal: bool = False
    equal_mail: bool = False  # db and blob, right after the replay
    digest_equal: dict[str, bool] = field(default_factory=dict)  # per volume, at the end
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Shipping(Protocol):
    """How snapshots travel from the primary to the standby site, and onto the standby."""

    def ship(self, m: Manifest) -> None:
        """Send every snapshot of `m` (and `m` itself) to the site; mark them shipped."""
        ...

    def pull(self, set_m: Manifest, redo_m: Manifest, standby: Site) -> None:
        """Bring set `set_m` and redolog snapshot `redo_m` (the same manifest, or a later one)
        onto the standby's volumes."""
        ...


class FolderCopy:
    """`Shipping` into a folder: each dir-backend snapshot copied there (from its snapshot
    copy, never the live volume), each marked shipped in the primary's catalog."""

    def __init__(self, site: Path, catalog: LocalCatalog) -> None:
        self.site = site
        self.catalog = catalog
        site.mkdir(parents=True, exist_ok=True)

    def ship(self, m: Manifest) -> None:
        dest = self.site / m.id
        tmp = self.site / f".{m.id}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for rec in m.snapshots:
            shutil.copytree(rec.ref, tmp / rec.volume, symlinks=True)
        tmp.rename(dest)
        for rec in m.snapshots:
            self.catalog.mark_shipped(m.id, rec.volume)

    def pull(self, set_m: Manifest, redo_m: Manifest, standby: Site) -> None:
        for vol in VOLUMES:
            target = getattr(standby.settings.volumes, vol).path
            src = self.site / (redo_m if vol == "redolog" else set_m).id / vol
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(src, target, symlinks=True)
            for junk in (".standby-snapshot", LOCK_NAME):
                (target / junk).unlink(missing_ok=True)
            (target / "data" / "standby-owner.pid").unlink(missing_ok=True)


def _committed_ops(log_dir: Path) -> int:
    logs, _ = select_files(log_dir, Selection())
    player = Player(Selection())
    return sum(1 for rec, _ in player.play(logs) if not isinstance(rec.op, StoreIncomingBlob))


def run(*, workdir: Path | None = None, accounts: int = 20, seed: int | None = None,
        workers: int = 4, set_every_s: float = 10.0, redolog_every_s: float = 3.0,
        kill_window_s: tuple[float, float] = (25.0, 40.0), groups: int = 100,
        keep: bool = False, say: Callable[[str], None] = lambda m: None,
        shipping: Shipping | None = None) -> DrillReport:
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    base = Path(tempfile.mkdtemp(prefix="standby-drill-", dir=workdir))
    rep = DrillReport(workdir=str(base), accounts=accounts)
    rep.notes.append(f"seed {seed}")
    primary_cfg = control.init(base / "primary", mailbox_groups=groups)
    p = settings_mod.load(primary_cfg)
    # The drill's sets are staggered by half a second: its cadence is compressed.
    p_sets = settings_mod.with_overrides(p, {"snapshot.stagger_s": 0.5})
    standby_cfg = control.init(base / "standby", server_id=p.server_id, mailbox_groups=groups,
                               manifest_key=p.snapshot.manifest_key)
    # The standby and the reference read the primary's directory, as a standby site reads the
    # primary's LDAP: a replayed purge deletes by the accounts' lifetimes held there.
    shared = {"store.directory": str(p.directory_path)}
    sb = settings_mod.with_overrides(settings_mod.load(standby_cfg), shared)
    shipping = shipping or FolderCopy(base / "site", local.for_settings(p))
    reference = None
    try:
        say(f"primary: starting in {base / 'primary'}")
        control.start(p)
        stop = threading.Event()
        result: dict[str, Any] = {}

        def load() -> None:
            try:
                result["load"] = loadgen.run(p.store_socket, accounts=accounts, ops=0,
                                             seed=seed, workers=workers, duration_s=3600,
                                             stop=stop)
            except StandbyError as e:  # the kill cuts it off; that is the point
                result["error"] = str(e)

        t_load = threading.Thread(target=load, name="drill-load", daemon=True)
        t_load.start()
        kill_after = rng.uniform(*kill_window_s)
        t0 = time.monotonic()
        next_set = t0 + 2.0
        next_redo = next_set + redolog_every_s
        shipped_set: Manifest | None = None
        shipped_redo: Manifest | None = None
        say(f"primary: load running; the primary will be killed after {kill_after:.1f} s")
        while time.monotonic() - t0 < kill_after:
            now = time.monotonic()
            if now >= next_set:
                m = sets.take("set", p_sets).manifest
                shipping.ship(m)
                shipped_set = shipped_redo = m
                rep.sets += 1
                say(f"set {m.id}: skew {m.skew_ms} ms, shipped")
                next_set = now + set_every_s
                next_redo = now + redolog_every_s
            elif now >= next_redo and shipped_set is not None:
                m = sets.take("redolog", p).manifest
                shipping.ship(m)
                shipped_redo = m
                rep.redolog_snapshots += 1
                say(f"redolog snapshot {m.id}: shipped")
                next_redo = now + redolog_every_s
            time.sleep(0.05)
        killed_ms = timefmt.now_ms()
        control.kill(p)
        t_kill = time.monotonic()
        stop.set()
        t_load.join(60)
        rep.killed_at = timefmt.iso_utc(killed_ms)
        if "load" in result:
            rep.load_actions = result["load"].actions
        say("primary: killed")
        if shipped_set is None or shipped_redo is None:
            raise StandbyError("no snapshot set was shipped before the primary died",
                               hint="lengthen the kill window")
        last = shipped_redo.snapshot("redolog")
        assert last is not None
        rep.last_shipped = timefmt.iso_utc(last.taken_at_ms)
        rep.rpo_s = round((killed_ms - last.taken_at_ms) / 1000, 3)

        say(f"standby: pulling set {shipped_set.id} and redolog snapshot {shipped_redo.id}")
        t = time.monotonic()
        shipping.pull(shipped_set, shipped_redo, Site(sb))
        rep.restore_s = round(time.monotonic() - t, 3)
        start = shipped_set.replay
        sel = Selection(from_time=start.from_time_ms, from_seq=start.seq)
        say(f"standby: replaying from {timefmt.echo(start.from_time_ms)} (seq {start.seq})")
        standby = Site.open(sb)
        res = engine.run(standby, engine.find_logs(standby, sel), sel,
                         engine.EngineOptions(index="defer"))
        rep.replay_s = round(res.seconds, 3)
        rep.replay_ops = res.ops_applied
        rep.replay_ops_per_s = round(res.ops_applied / res.seconds) if res.seconds else 0
        rep.rto_mail_s = rep.rto_s = round(time.monotonic() - t_kill, 3)
        if res.errors:
            rep.notes.append("replay errors: " + "; ".join(res.errors[:3]))
        mail_state = digest_site(standby)  # not timed: the proof, not the failover
        say("standby: index catch-up")
        t = time.monotonic()
        caught = catchup.run(standby)
        rep.catchup_s = round(time.monotonic() - t, 3)
        rep.catchup_documents = caught.documents
        rep.rto_search_s = round(rep.rto_mail_s + rep.catchup_s, 3)
        if caught.behind:
            rep.notes.append(f"index still behind after the catch-up: {caught.as_dict()}")

        say("proof: replaying the pulled log from empty into a reference store")
        ref_cfg = control.init(base / "reference", server_id=p.server_id, mailbox_groups=groups,
                               manifest_key=p.snapshot.manifest_key)
        reference = settings_mod.with_overrides(settings_mod.load(ref_cfg), shared)
        ref = Site.open(reference)
        every = Selection()
        engine.run(ref, engine.find_logs(ref, every, log_dir=sb.volumes.redolog.path), every)
        want = digest_site(ref)
        got = digest_site(standby)
        rep.reference_digest = want.total
        rep.standby_digest = got.total
        at_mail = mail_state.equal(want)
        rep.equal_mail = at_mail["db"] and at_mail["blob"]
        rep.digest_equal = got.equal(want)
        rep.equal = rep.equal_mail and rep.digest_equal["all"]
        rep.ops_never_shipped = max(0, _committed_ops(p.volumes.redolog.path) -
                                    _committed_ops(sb.volumes.redolog.path))
        return rep
    finally:
        for s in (p, sb, reference):
            if s is not None:
                try:
                    control.stop(s, timeout=30)
                except StandbyError as e:
                    say(f"clean-up: {e}")
        if not keep:
            shutil.rmtree(base, ignore_errors=True)

