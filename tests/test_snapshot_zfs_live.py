"""ZFS under load: sets taken while loadgen writes, each snapshot cloned and brought up.

A real store runs on four zfs-fuse datasets (children of `pool/sb`, next to a non-volume child)
with a small redo rollover size, and loadgen writes all the while. We take a staggered set, an
atomic set and a redolog snapshot, then stop everything and check, for each set:

- every snapshot's clone comes up: MariaDB on the db clone runs InnoDB crash recovery and
  answers queries, every index SQLite database opens (WAL recovery) and searches, the redo log
  scans, the blobs read;
- the manifest's replay start is at or before the first op that any of the four clones lacks
  (by redo position, or the op was one of the transactions then active; and by time);
- atomic: one creation txg for all four; staggered: the measured skew matches the stagger.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standby import settings as settings_mod
from standby.catalog.manifest import Manifest
from standby.settings import Settings
from standby.snapshot import sets
from standby.snapshot.zfs import ZfsBackend
from standby.store import control
from standby.store.loadgen import run as loadgen
from tests import services
from tests.services import ZfsFuse
from tests.test_snapshot_support import (
    VOLS,
    LoggedOp,
    assert_replay_start,
    committed_ops,
    destroy_pool,
    load,
    site_config,
    zfs_volumes,
)

STAGGER = 0.5


class Live:
    def __init__(self, root: Path, pool: str, s: Settings) -> None:
        self.root, self.pool, self.settings = root, pool, s
        self.sets: dict[str, Manifest] = {}
        self.ops: list[LoggedOp] = []
        self.clones: list[str] = []


@pytest.fixture(scope="module")
def live(zfs: ZfsFuse, tmp_path_factory: pytest.TempPathFactory,
         mariadb_available: None) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("zlive")
    pool, img, vols = zfs_volumes(zfs, root, size="1536M")
    lv: Live | None = None
    try:
        cfg = site_config(root, vols, sections={"redolog": {"rollover_size_kb": 768}})
        s = load(cfg)
        lv = Live(root, pool, s)
        bes = {"zfs": ZfsBackend(use_lzc=False)}
        control.start(s)
        stop = threading.Event()
        result: dict[str, Any] = {}

        def drive() -> None:
            result["load"] = loadgen(s.store_socket, accounts=6, ops=10**6, seed=11, workers=4,
                                     stop=stop)

        t = threading.Thread(target=drive, daemon=True)
        t.start()
        try:
            time.sleep(2.0)
            for label, kw in (("staggered", {"stagger_s": STAGGER}), ("atomic", {"atomic": True})):
                out = sets.take("set", settings_mod.with_overrides(
                    s, {f"snapshot.{k}": v for k, v in kw.items()}), backends=bes)
                lv.sets[label] = out.manifest
                time.sleep(0.7)
            red = sets.take("redolog", s, backends=bes)
            lv.sets["redolog"] = red.manifest
            time.sleep(0.5)
        finally:
            stop.set()
            t.join(60)
        control.stop(s)
        assert result["load"].errors == 0, result["load"].error_samples
        lv.ops = committed_ops(s.volumes.redolog.path)
        yield lv
    finally:
        if lv is not None:
            try:
                control.stop(lv.settings, timeout=30)
            except Exception:  # noqa: BLE001
                control.kill(lv.settings)
            for c in reversed(lv.clones):
                services._run("zfs", "destroy", "-r", c, check=False)
        destroy_pool(pool, img)


def _clone(lv: Live, snapshot_ref: str, tag: str) -> Path:
    ds = f"{lv.pool}/clone-{tag}"
    mnt = lv.root / "clones" / tag
    services._run("zfs", "clone", "-o", f"mountpoint={mnt}", snapshot_ref, ds)
    lv.clones.append(ds)
    return mnt


@pytest.mark.parametrize("label", ["staggered", "atomic"])
def test_each_snapshot_recovers_and_replay_start_is_early_enough(live: Live, label: str) -> None:
    m = live.sets[label]
    assert m.status == "complete" and [s.volume for s in m.snapshots] == list(VOLS)
    clone = {s.volume: _clone(live, s.ref, f"{label}-{s.volume}") for s in m.snapshots}
    assert_replay_start(m, live.ops, clone, primary_blobs=live.settings.volumes.blob.path,
                        run_dir=live.root / "run" / label,
                        groups=live.settings.store.mailbox_groups)


def test_atomic_set_is_one_transaction_group(live: Live) -> None:
    m = live.sets["atomic"]
    assert m.atomic and m.skew_ms == 0
    assert len({s.identity["createtxg"] for s in m.snapshots}) == 1
    assert len({s.identity["guid"] for s in m.snapshots}) == 4
    snaps = services._run("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r",
                          f"{live.pool}/sb").stdout.decode().split()
    name = m.snapshots[0].name
    assert sorted(n for n in snaps if n.endswith("@" + name)) == sorted(
        s.ref for s in m.snapshots)  # `-r` also caught pool/sb and pool/sb/other: destroyed


def test_staggered_skew_matches_the_stagger(live: Live) -> None:
    m = live.sets["staggered"]
    st = STAGGER * 1000
    started = [s.started_ms for s in m.snapshots]
    taken = [s.taken_at_ms for s in m.snapshots]
    calls = [t - s for s, t in zip(started, taken, strict=True)]
    for i in range(1, 4):
        due = started[0] + i * st
        assert started[i] >= due - 5, (i, started)  # never early
        # ...and no later than the slot, or than the previous call's return when it overran
        # (a `zfs snapshot` waits for a txg sync: tens of ms, up to a second under load).
        assert started[i] <= max(due, taken[i - 1]) + 250, (i, started, taken)
    # So the measured skew is the configured 3 staggers, give or take the calls' durations:
    # at least the last slot minus the first call, at most the slots plus every call that
    # overran its slot (a loaded machine's `zfs snapshot` can take a second).
    assert m.skew_ms >= 3 * st - calls[0] - 5, (m.skew_ms, calls)
    assert m.skew_ms <= 3 * st + sum(max(0, c - st) for c in calls) + max(calls) + 3 * 250, (
        m.skew_ms, calls)
    assert len({s.identity["createtxg"] for s in m.snapshots}) == 4
    assert m.quiesced_db


def test_redolog_snapshot_chains_to_the_last_set(live: Live) -> None:
    m = live.sets["redolog"]
    (s,) = m.snapshots
    assert s.parent == f"{live.sets['atomic'].id}/redolog"
    assert s.redo.seq >= live.sets["atomic"].snapshots[-1].redo.seq
