"""`standby drill`: the main job on embedded defaults, a failover rehearsed end to end.

1. A primary store is built in a work folder (the four volumes as folders, the `dir` snapshot
   backend, a private MariaDB) and mail traffic is driven at it.
2. On a time-compressed cadence (a set every `set_every_s`, a redolog snapshot every
   `redolog_every_s`), snapshots are taken and shipped (`Shipping.ship`).
3. At a random moment the primary is killed (SIGKILL, the store service and its MariaDB).
4. Failover, as an operator does it: `standby pull --set ID` brings the newest shipped set and
   the newest shipped redolog snapshot onto the standby's volumes (`Shipping.pull`), and
   `zmplayredo --set latest --index defer` replays the redo log from the set's recorded start
   (read from the catalog the pull wrote): mail first; then the index is caught up.
5. Proof (`drill_proof`): the standby's digest must equal the digest of a store built by
   replaying, from empty, the primary's own log cut at the position the standby reached — db
   and blob right after the replay, the index once the catch-up is done; no op committed
   before that position may be missing at the standby, and the standby must have reached what
   the primary had confirmed at the target (else: a gap).

`Shipping` is the one seam between the drill and how snapshots travel: `TargetShipping` runs
`standby ship` to a real target after each snapshot (a `file://` folder in the work folder by
default, or any target URL) and `standby pull` from it at the standby.
It reports `ok`, `committed_ops_lost`, `divergent_mailboxes`, RPO (`rpo_s`: kill time minus the
commit time of the last transaction the standby has), `ops_after_cut` (committed on the primary
after that position), RTO for mail (`rto_mail_s`: kill to db and blob forward) and for search
(`rto_search_s`: kill to the index caught up), `rto_s` (kill to the standby's store started and
answering; the proof's own digests left out), the replay rate, and per volume whether the
standby equals the reference (`digest_equal`). `sabotage="redolog"` removes the newest redolog
snapshot from the target before the pull: the drill must then report the gap and fail.
"""

from __future__ import annotations

import dataclasses
import os
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
from standby.catalog.manifest import Manifest
from standby.catalog.start import replay_start
from standby import _process
from standby import drill_proof as proof
from standby.errors import StandbyError, UsageError, VolumeError
from standby.fsutil import write_atomic
from standby.redolog import position
from standby.replay import catchup, engine
from standby.replay.player import Selection
from standby.snapshot import sets
from standby.store import control, loadgen
from standby.store.digest import StoreDigest, digest_site
from standby.store.site import Site
from standby.settings import Settings, TargetSettings, Volumes, VolumeSettings
from standby.snapshot import btrfs as btrfs_mod
from standby.snapshot import zfs_cli
from standby.transfer import factory, hostdir
from standby.transfer.objects import ObjectTarget
from standby.transfer.stream import Streamer
from standby.transfer.stream_state import StreamPosition
from standby.transfer import pull as pull_mod
from standby.transfer import ship as ship_mod

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
    rto_s: float = 0.0  # kill to the standby's store started
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
    ok: bool = False
    committed_ops_lost: int = 0
    divergent_mailboxes: int = 0
    ops_after_cut: int = 0
    reached: str = ""  # the position the standby reached, and when its last commit was
    last_commit: str = ""
    gap: str = ""
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


class TargetShipping:
    """`Shipping` through a real target: `standby ship` on the primary after each snapshot,
    `standby pull --set ID` at the standby (what an operator runs)."""

    def __init__(self, url: str, primary: Settings, standby: Settings) -> None:
        self.primary = primary
        self.out = factory.open_target(url, primary)
        self.into = factory.open_target(url, standby)

    def ship(self, m: Manifest) -> None:
        res = ship_mod.ship(self.primary, self.out)
        assert isinstance(res, ship_mod.ShipResult)
        if m.id not in res.manifests and not self.out.catalog.exists(m.kind, m.id):
            raise StandbyError(f"{m.kind} {m.id} did not reach {self.out.url}")

    def pull(self, set_m: Manifest, redo_m: Manifest, standby: Site) -> None:
        # What the target holds decides, as for an operator; the drill's proof checks that the
        # standby reached what was shipped (a redolog snapshot missing there is a gap).
        p = pull_mod.plan(self.into, set_m.id)
        pull_mod.pull(standby.settings, self.into, p)


def _with_target(s: Settings, t: TargetSettings | None) -> Settings:
    return s if t is None else dataclasses.replace(s, target=t)


class DrillVolumes:
    """Where the drill's volumes live: folders in the work folder (`dir`), datasets under an
    existing ZFS dataset `root` (`zfs`: the primary's made here, the standby's made by the
    pull's receives), or subvolumes in an existing folder `root` on btrfs. Everything made is
    removed by `clean`. The commands come from the backends' own builders."""

    def __init__(self, backend: str, root: str | None, say: Callable[[str], None]) -> None:
        if backend not in ("dir", "zfs", "btrfs"):
            raise UsageError(f"--backend {backend}: the drill builds dir, zfs or btrfs volumes")
        if (backend == "dir") != (root is None):
            raise UsageError("--root names an existing ZFS dataset (--backend zfs) or a folder "
                             "on btrfs (--backend btrfs), and only then",
                             hint="e.g. --backend zfs --root tank/scratch")
        self.backend, self.root, self.say = backend, root, say
        self.top: str | None = None

    def make(self, tag: str) -> dict[str, Volumes] | None:
        """The primary's and the standby's volumes; None for the folders `store init` made."""
        if self.backend == "dir" or self.root is None:
            return None
        out: dict[str, Volumes] = {}
        if self.backend == "zfs":
            self.top = f"{self.root}/standby-drill-{tag}"
            for v in VOLUMES:
                _process.run(zfs_cli.create_parents_cmd("zfs", f"{self.top}/primary/{v}"))
            _process.run(zfs_cli.create_parents_cmd("zfs", f"{self.top}/standby"))
            res = _process.run(hostdir.mountpoint_cmd(self.top), check=False)
            mnt = hostdir.parse_mountpoint(res.text)
            if mnt is None:
                raise VolumeError(f"the ZFS dataset {self.top} is not mounted",
                                  hint=f"give {self.root} a mountpoint")
            for side in ("primary", "standby"):
                out[side] = Volumes(**{v: VolumeSettings(Path(mnt) / side / v, "zfs",
                                                         f"{self.top}/{side}/{v}")
                                       for v in VOLUMES})
        else:
            top = Path(self.root) / f"standby-drill-{tag}"
            self.top = str(top)
            for side in ("primary", "standby"):
                (top / side).mkdir(parents=True)
                for v in VOLUMES:
                    _process.run(btrfs_mod.create_cmd("btrfs", top / side / v))
                out[side] = Volumes(**{v: VolumeSettings(top / side / v, "btrfs")
                                       for v in VOLUMES})
        self.say(f"volumes: {self.backend} under {self.top}")
        return out

    def clean(self) -> None:
        if self.top is None:
            return
        if self.backend == "zfs":
            snaps = zfs_cli.parse_names(_process.run(zfs_cli.list_tree_cmd(
                "zfs", self.top, types="snapshot"), check=False).text)
            sets = zfs_cli.parse_names(_process.run(zfs_cli.list_tree_cmd(
                "zfs", self.top), check=False).text)
            for name in [*snaps, *reversed(sets)]:
                for _ in range(40):  # zfs-fuse is "busy" for a moment after a dataset's use
                    if _process.run(zfs_cli.destroy_cmd("zfs", name), check=False
                                    ).returncode == 0:
                        break
                    time.sleep(0.25)
        else:
            top = Path(self.top)
            subvolumes = [Path(d) for d, _dirs, _files in os.walk(top)
                          if os.stat(d).st_ino == 256]  # a btrfs subvolume's root inode
            for sv in sorted(subvolumes, key=lambda p: len(p.parts), reverse=True):
                _process.run(btrfs_mod.delete_cmd("btrfs", sv), check=False)
            shutil.rmtree(top, ignore_errors=True)


def _on_volumes(s: Settings, vols: Volumes) -> Settings:
    """`s` with its volumes at `vols`, written to its config file (the store service reads it)."""
    out = dataclasses.replace(s, volumes=vols)
    assert s.source is not None
    write_atomic(s.source, settings_mod.to_toml(out, include_secrets=True), mode=0o600)
    return settings_mod.load(s.source)


class _Streaming:
    """`standby stream` on the primary, in a thread, to the drill's target (object targets)."""

    def __init__(self, shipping: Shipping, p: Settings, say: Callable[[str], None]) -> None:
        self.stop = threading.Event()
        self.streamer: Streamer | None = None
        self.result: StreamPosition | None = None
        self.t0 = time.monotonic()
        self.seconds = 0.0
        self.thread: threading.Thread | None = None
        if not isinstance(shipping, TargetShipping) or not isinstance(shipping.out,
                                                                      ObjectTarget):
            say("stream: not to this target (s3:// and file:// only)")
            return
        self.streamer = Streamer(p, shipping.out)
        thread = threading.Thread(target=self._run, name="drill-stream", daemon=True)
        self.t0 = time.monotonic()
        thread.start()
        self.thread = thread
        say(f"stream: following redo.log every {p.stream.interval_ms} ms")

    def _run(self) -> None:
        assert self.streamer is not None
        self.result = self.streamer.run(self.stop)

    def join(self) -> StreamPosition:
        if self.thread is None or self.streamer is None:
            return StreamPosition("-")
        self.thread.join(60)
        self.seconds = time.monotonic() - self.t0
        return self.result or self.streamer.pos


def _prove(rep: DrillReport, base: Path, p: Settings, sb: Settings, killed_ms: int,
           confirmed: tuple[int, int], groups: int, shared: dict[str, str],
           mail_state: StoreDigest, standby_digest: StoreDigest,
           say: Callable[[str], None]) -> Settings:
    """Fill the proof's fields: the standby against the primary's own log cut where the
    standby's log ends (see `drill_proof`); `mail_state` is the standby right after the
    replay (db and blob must already equal), `standby_digest` once the index caught up."""
    reached = position.reach(sb.volumes.redolog.path)
    rep.reached = str(reached)
    rep.last_commit = timefmt.iso_utc(reached.last_commit_ms) if reached.last_commit_ms else ""
    rep.rpo_s = round((killed_ms - reached.last_commit_ms) / 1000, 3)
    rep.gap = proof.gap(reached, confirmed, "confirmed a redolog snapshot or segment") or ""
    if rep.gap:
        rep.notes.append(rep.gap)
    cut = proof.cut_copy(p.volumes.redolog.path, reached, base / "primary-cut")
    say(f"proof: replaying the primary's own log up to {reached} into a reference store")
    ref_cfg = control.init(base / "reference", server_id=p.server_id, mailbox_groups=groups,
                           manifest_key=p.snapshot.manifest_key)
    reference = settings_mod.with_overrides(settings_mod.load(ref_cfg), shared)
    ref = Site.open(reference)
    every = Selection()
    engine.run(ref, engine.find_logs(ref, every, log_dir=cut), every)
    ref_digest = digest_site(ref)
    rep.reference_digest = ref_digest.total
    rep.standby_digest = standby_digest.total
    at_mail = mail_state.equal(ref_digest)
    rep.equal_mail = at_mail["db"] and at_mail["blob"]
    rep.digest_equal = standby_digest.equal(ref_digest)
    rep.equal = rep.equal_mail and rep.digest_equal["all"]
    rep.divergent_mailboxes = len(proof.divergent(
        {m.mailbox_id: m.digest for m in standby_digest.mailboxes},
        {m.mailbox_id: m.digest for m in ref_digest.mailboxes}))
    lost = proof.loss(p.volumes.redolog.path, cut, sb.volumes.redolog.path)
    rep.committed_ops_lost = lost.committed_ops_lost
    rep.ops_after_cut = lost.ops_after_cut
    rep.ops_never_shipped = max(0, lost.primary_ops - lost.standby_ops)
    return reference


def run(*, workdir: Path | None = None, accounts: int = 20, seed: int | None = None,
        workers: int = 4, set_every_s: float = 10.0, redolog_every_s: float = 3.0,
        kill_window_s: tuple[float, float] = (25.0, 40.0), groups: int = 100,
        keep: bool = False, say: Callable[[str], None] = lambda m: None,
        target: str | None = None, target_settings: TargetSettings | None = None,
        backend: str = "dir", root: str | None = None,
        shipping: Shipping | None = None, sabotage: str | None = None,
        stream: bool = True) -> DrillReport:
    """The drill (see the module docstring). Snapshots go to `target` (default: a `file://`
    folder in the work folder) with `target_settings` (the `[target]` section of a config
    file, for an S3 endpoint, an encryption key...), or through `shipping` when given. The
    volumes are `backend` ones (`DrillVolumes`: zfs under the dataset `root`, btrfs in the
    folder `root`)."""
    if sabotage not in (None, "redolog", "segment"):
        raise UsageError(f"--sabotage {sabotage}: the drill can remove a redolog snapshot "
                         "(redolog) or a streamed segment (segment)")
    volumes = DrillVolumes(backend, root, say)
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    base = Path(tempfile.mkdtemp(prefix="standby-drill-", dir=workdir))
    rep = DrillReport(workdir=str(base), accounts=accounts)
    rep.notes.append(f"seed {seed}")
    primary_cfg = control.init(base / "primary", mailbox_groups=groups)
    url = target or f"file://{base / 'site'}"
    if target is None:
        (base / "site").mkdir()
    p = _with_target(settings_mod.load(primary_cfg), target_settings)
    # The drill's sets are staggered by half a second: its cadence is compressed.
    p_sets = settings_mod.with_overrides(p, {"snapshot.stagger_s": 0.5})
    standby_cfg = control.init(base / "standby", server_id=p.server_id, mailbox_groups=groups,
                               manifest_key=p.snapshot.manifest_key)
    # The standby and the reference read the primary's directory, as a standby site reads the
    # primary's LDAP: a replayed purge deletes by the accounts' lifetimes held there.
    shared = {"store.directory": str(p.directory_path)}
    sb = _with_target(settings_mod.with_overrides(settings_mod.load(standby_cfg), shared),
                      target_settings)
    reference = None
    try:
        made = volumes.make(base.name.rsplit("-", 1)[-1])
        if made is not None:
            p = _with_target(_on_volumes(p, made["primary"]), target_settings)
            p_sets = settings_mod.with_overrides(p, {"snapshot.stagger_s": 0.5})
            sb = _with_target(_on_volumes(sb, made["standby"]), target_settings)
        rep.notes.append(f"target {url}, {backend} volumes")
        shipping = shipping or TargetShipping(url, p, sb)
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

        streaming = _Streaming(shipping, p, say) if stream else None
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
                # From when the set was shipped: on slow storage a set can take longer than
                # the set interval, and a redolog snapshot still comes between two sets.
                next_redo = time.monotonic() + redolog_every_s
                next_set = max(now + set_every_s, next_redo + 0.001)
            elif now >= next_redo and shipped_set is not None:
                m = sets.take("redolog", p).manifest
                shipping.ship(m)
                shipped_redo = m
                rep.redolog_snapshots += 1
                say(f"redolog snapshot {m.id}: shipped")
                next_redo = now + redolog_every_s
            time.sleep(0.05)
        killed_ms = timefmt.now_ms()
        if streaming is not None:
            streaming.stop.set()  # the streamer runs on the primary: it dies with it
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
        confirmed = (last.redo.seq, last.redo.offset)
        if streaming is not None and streaming.thread is not None:
            acked = streaming.join()
            rep.notes.append(f"streamed for {streaming.seconds:.1f} s: {acked.segments} "
                             f"segments in {acked.puts} PUTs, up to seq {acked.seq} offset "
                             f"{acked.offset}")
            confirmed = max(confirmed, (acked.seq, acked.offset))
        if sabotage is not None:
            assert isinstance(shipping, TargetShipping)
            undo = (proof.remove_newest_redolog if sabotage == "redolog"
                    else proof.remove_a_segment)
            say("sabotage: " + undo(shipping.into))

        say(f"standby: standby pull --set {shipped_set.id} (redolog as of {shipped_redo.id})")
        t = time.monotonic()
        shipping.pull(shipped_set, shipped_redo, Site(sb))
        rep.restore_s = round(time.monotonic() - t, 3)
        # What `zmplayredo --set latest` reads at the standby: the catalog the pull wrote.
        start = replay_start(local.for_settings(sb), "latest")
        if start.manifest.id != shipped_set.id:
            raise StandbyError(f"the standby's latest set is {start.manifest.id}, not the "
                               f"pulled {shipped_set.id}")
        sel = Selection(from_time=start.from_time_ms, from_seq=start.from_seq)
        say(f"standby: zmplayredo --set latest replays from {timefmt.echo(start.from_time_ms)} "
            f"(seq {start.from_seq})")
        standby = Site.open(sb)
        res = engine.run(standby, engine.find_logs(standby, sel), sel,
                         engine.EngineOptions(index="defer"))
        rep.replay_s = round(res.seconds, 3)
        rep.replay_ops = res.ops_applied
        rep.replay_ops_per_s = round(res.ops_applied / res.seconds) if res.seconds else 0
        rep.rto_mail_s = round(time.monotonic() - t_kill, 3)
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
        # The proof reads the standby's log as the replay left it: before the store starts
        # (its start-up rolls the log over). Its time is not part of the RTO.
        reference = _prove(rep, base, p, sb, killed_ms, confirmed, groups, shared,
                           mail_state, digest_site(standby), say)
        say("standby: standby store start")
        t = time.monotonic()
        control.start(sb)
        rep.rto_s = round(rep.rto_mail_s + time.monotonic() - t, 3)
        rep.ok = (rep.equal and rep.committed_ops_lost == 0 and rep.divergent_mailboxes == 0
                  and not rep.gap and not res.errors and not caught.behind)
        return rep
    finally:
        for s in (p, sb, reference):
            if s is not None:
                try:
                    control.stop(s, timeout=30)
                except StandbyError as e:
                    say(f"clean-up: {e}")
        if not keep:
            volumes.clean()
            shutil.rmtree(base, ignore_errors=True)

