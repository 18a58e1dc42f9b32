"""The `dir` backend under load: copies of a live store (frozen store, quiesced and clean InnoDB)
that come up — MariaDB starts on the db copy and reads — and a replay start that is early
enough; reflink copies on a file system that has them."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from standby import settings as settings_mod
from standby.snapshot import sets
from standby.snapshot.dir import DirBackend, copy_tree
from standby.snapshot.execute import Outcome
from standby.store import control
from standby.store.loadgen import run as loadgen
from tests.test_snapshot_support import (
    VOLS,
    assert_replay_start,
    committed_ops,
    load,
    site_config,
)


def test_dir_set_of_a_live_store_comes_up_and_replays_from_the_right_place(
        make_store: Any, tmp_path: Path) -> None:
    root = tmp_path / "d"
    cfg = site_config(root, {v: (root / v, "dir", None) for v in VOLS},
                      sections={"redolog": {"rollover_size_kb": 512}})
    s = load(cfg)
    bes = {"dir": DirBackend(s.state_dir / "snapshots")}
    control.start(s)
    stop = threading.Event()
    result: dict[str, Any] = {}
    try:
        t = threading.Thread(target=lambda: result.update(load=loadgen(
            s.store_socket, accounts=5, ops=10**6, seed=5, workers=3, stop=stop)), daemon=True)
        t.start()
        time.sleep(1.5)
        out = sets.take("set", settings_mod.with_overrides(s, {"snapshot.stagger_s": 0.1}),
                        backends=bes)
        assert isinstance(out, Outcome)
        time.sleep(0.7)
    finally:
        stop.set()
        if "t" in locals():
            t.join(60)
        control.stop(s)
    assert result["load"].errors == 0, result["load"].error_samples
    m = out.manifest
    assert m.quiesced_db and m.status == "complete"
    db = m.snapshot("db")
    assert db is not None and db.identity["files"] > 0
    # Bring up copies (starting MariaDB changes its data directory: never the snapshot itself).
    work = tmp_path / "up"
    clones = {}
    for rec in m.snapshots:
        clones[rec.volume] = work / rec.volume
        shutil.copytree(rec.ref, clones[rec.volume], symlinks=True)
    assert_replay_start(m, committed_ops(s.volumes.redolog.path), clones,
                        primary_blobs=s.volumes.blob.path, run_dir=tmp_path / "run",
                        groups=s.store.mailbox_groups)


def test_reflink_where_the_file_system_has_it(btrfs: Path, tmp_path: Path) -> None:
    src = btrfs / "vol"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f.bin").write_bytes(b"x" * 100_000)
    (src / "top").write_text("hello")
    (src / "link").symlink_to("top")
    (src / "data").mkdir()
    (src / "data" / "standby-owner.pid").write_text("123\n")
    stats = copy_tree(src, btrfs / "copy")
    assert stats.method == "reflink" and stats.files == 2 and stats.bytes == 100_005
    assert (btrfs / "copy" / "a" / "b" / "f.bin").read_bytes() == b"x" * 100_000
    assert (btrfs / "copy" / "link").is_symlink()
    assert not (btrfs / "copy" / "data" / "standby-owner.pid").exists()
    # Across file systems there is no reflink: a plain copy, same content.
    stats = copy_tree(src, tmp_path / "copy")
    assert stats.method == "copy" and (tmp_path / "copy" / "top").read_text() == "hello"
