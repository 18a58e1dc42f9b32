"""Bad input and failures, end to end through `sets.take` on real backends: each a clear error,
and no half-taken set left behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from standby import settings as settings_mod
from standby.errors import CommandNotFound, StandbyError, StateConflict, VolumeError
from standby.snapshot import sets
from standby.snapshot.hooks import HookFailed
from tests import services
from tests.services import ZfsFuse
from tests.test_snapshot_support import VOLS, destroy_pool, load, site_config


@pytest.fixture
def zpool(zfs: ZfsFuse) -> Iterator[str]:
    """A pool of our own (conftest's `zpool` does not retry a destroy that zfs-fuse reports
    busy for a moment, and would leak the pool)."""
    pool, img = zfs.create_pool(f"sbf{uuid.uuid4().hex[:8]}")
    yield pool
    destroy_pool(pool, img)


def _zfs_site(zpool: str, root: Path, **sections: dict[str, object]) -> Path:
    vols = {}
    for v in VOLS:
        services._run("zfs", "create", "-p", "-o", f"mountpoint={root / v}", f"{zpool}/sb/{v}")
        vols[v] = (root / v, "zfs", f"{zpool}/sb/{v}")
    return site_config(root, vols, sections=sections)


def _snapshots(zpool: str) -> list[str]:
    out = services._run("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", zpool)
    return out.stdout.decode().split()


def test_zfs_missing_is_a_clear_error(tmp_path: Path) -> None:
    vols = {v: (tmp_path / v, "zfs", f"tank/{v}") for v in VOLS}
    s = load(site_config(tmp_path, vols, sections={"snapshot": {"zfs_program": "zfs-missing"}}))
    with pytest.raises(CommandNotFound, match="'zfs-missing' is not installed") as ei:
        sets.take("set", s)
    assert ei.value.exit_code == 7
    assert not list(s.state_dir.glob("catalog/**/*.json"))


def test_a_dataset_that_does_not_exist_fails_before_anything_is_taken(zpool: str,
                                                                      tmp_path: Path) -> None:
    cfg = _zfs_site(zpool, tmp_path)
    text = cfg.read_text().replace(f'dataset = "{zpool}/sb/index"',
                                   f'dataset = "{zpool}/sb/gone"')
    cfg.write_text(text)
    with pytest.raises(VolumeError, match=f"ZFS dataset '{zpool}/sb/gone' does not exist"):
        sets.take("set", load(cfg))
    assert _snapshots(zpool) == []


def test_a_path_that_is_not_the_datasets_mountpoint_is_refused(zpool: str,
                                                               tmp_path: Path) -> None:
    cfg = _zfs_site(zpool, tmp_path / "z")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg.write_text(cfg.read_text().replace(f'path = "{tmp_path / "z" / "blob"}"',
                                           f'path = "{elsewhere}"'))
    with pytest.raises(VolumeError, match="is not where ZFS dataset .* is mounted"):
        sets.take("set", load(cfg))


def test_btrfs_backend_on_another_file_system_is_refused(tmp_path: Path) -> None:
    vols = {v: (tmp_path / v, "btrfs", None) for v in VOLS}
    s = load(site_config(tmp_path, vols))
    with pytest.raises(VolumeError, match="not btrfs; the btrfs backend cannot snapshot it"):
        sets.take("set", s)


def test_a_failure_mid_set_destroys_what_was_taken(zpool: str, tmp_path: Path) -> None:
    # The pre hook takes the index volume's snapshot name first, so the set's own index
    # snapshot fails with "already exists" after db and blob were taken.
    hook = ["sh", "-c", f"zfs snapshot {zpool}/sb/index@standby-$STANDBY_SET_ID"]
    cfg = _zfs_site(zpool, tmp_path, snapshot={"pre_hook": hook, "stagger_s": 0.0})
    s = load(cfg)
    with pytest.raises(StateConflict, match="already exists"):
        sets.take("set", s)
    left = _snapshots(zpool)
    assert len(left) == 1 and left[0].startswith(f"{zpool}/sb/index@standby-set-"), left
    assert sets.listing(s) == []


def test_a_hanging_pre_hook_is_killed_and_nothing_is_taken(tmp_path: Path) -> None:
    marker = tmp_path / "post-status"
    s = load(site_config(tmp_path, {v: (tmp_path / v, "dir", None) for v in VOLS}, sections={
        "snapshot": {"pre_hook": ["sh", "-c", "sleep 30; true"], "hook_timeout_s": 0.5,
                     "post_hook": ["sh", "-c", f'echo "$STANDBY_STATUS" > {marker}']}}))
    with pytest.raises(HookFailed, match="did not finish within 0.5 s and was killed"):
        sets.take("set", s)
    assert marker.read_text().strip() == "failed"
    assert not list(s.state_dir.glob("snapshots/*/*"))
    assert sets.listing(s) == []


def test_a_failing_post_hook_is_reported_but_the_set_stays(tmp_path: Path) -> None:
    s = load(site_config(tmp_path, {v: (tmp_path / v, "dir", None) for v in VOLS}, sections={
        "snapshot": {"post_hook": ["sh", "-c", "echo nope >&2; exit 4"]}}))
    with pytest.raises(HookFailed, match="exit code 4: nope.*taken and is complete") as ei:
        sets.take("set", settings_mod.with_overrides(s, {"snapshot.stagger_s": 0}))
    assert isinstance(ei.value, StandbyError) and ei.value.exit_code == 7
    (row,) = sets.listing(s)
    assert row["status"] == "complete" and row["volumes"] == list(VOLS)


def test_dry_run_takes_nothing(tmp_path: Path) -> None:
    s = load(site_config(tmp_path, {v: (tmp_path / v, "dir", None) for v in VOLS}))
    p = sets.plan_take("set", s)
    assert len(p.snapshot_steps) == 4 and sets.listing(s) == []
    assert not (s.state_dir / "snapshots").exists()
