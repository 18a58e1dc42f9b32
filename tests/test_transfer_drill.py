"""The drill goes through a real target: `standby ship` to a file:// folder (or, from zfs
volumes, a zfs target or an S3 bucket on moto_server) after each snapshot, `standby pull` and
`zmplayredo --set latest` at the standby, digests equal."""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from pathlib import Path

import boto3
import pytest

from standby import drill
from standby.settings import TargetSettings
from tests import services
from tests import test_transfer_support as support


def test_the_drill_ships_through_file_and_fails_over_with_pull(mariadb_available: None) -> None:
    said: list[str] = []
    short = Path(tempfile.mkdtemp(prefix="sbd-"))  # socket paths must stay under 107 bytes
    try:
        _drill(short, said)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _drill(workdir: Path, said: list[str]) -> None:
    rep = drill.run(workdir=workdir, accounts=4, seed=7, workers=2, set_every_s=3.0,
                    redolog_every_s=1.0, kill_window_s=(8.0, 9.0), groups=4, keep=True,
                    say=said.append)
    assert rep.equal and rep.ok, rep.as_dict()
    assert rep.committed_ops_lost == 0 and rep.divergent_mailboxes == 0 and not rep.gap
    assert rep.sets >= 2 and rep.replay_ops > 0
    site = Path(rep.workdir) / "site"
    assert f"target file://{site}, dir volumes" in rep.notes
    assert any(m.startswith("standby: standby pull --set") for m in said)
    assert any("zmplayredo --set latest" in m for m in said)
    # what the standby pulled came from the target's catalog, every set of it complete
    sets = list(site.glob("*/catalog/sets/*.json"))
    assert len(sets) == rep.sets


def test_the_drill_on_zfs_volumes_ships_to_a_zfs_target(mariadb_available: None) -> None:
    """`standby drill --backend zfs --root DATASET --target zfs://...`: the primary's volumes
    are datasets, every snapshot is received at a zfs target on a second pool, the standby's
    datasets are made by the pull's receives, and the replay's digest equals the reference."""
    said: list[str] = []
    short = Path(tempfile.mkdtemp(prefix="sbz-"))  # socket paths must stay under 107 bytes
    try:
        (short / "p").mkdir()
        with support.zfs_pools(short / "p") as pools:
            assert pools.zfs is not None
            a, b = pools.zfs
            rep = drill.run(workdir=short, accounts=3, seed=11, workers=2,
                            set_every_s=4.0, redolog_every_s=1.0,
                            kill_window_s=(15.0, 16.0),
                            groups=4, say=said.append, backend="zfs", root=a,
                            target=f"zfs://{b}/drill")
            assert rep.equal, rep.as_dict()
            # zfs-fuse is slow: at least a set and the redolog increments after it
            assert rep.sets >= 1 and rep.redolog_snapshots >= 1 and rep.replay_ops > 0
            assert f"target zfs://{b}/drill, zfs volumes" in rep.notes
            # the target received every volume's snapshots; the drill removed its own datasets
            got = services._run("zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r",
                                f"{b}/drill").stdout.decode().split()
            assert {n.split("@")[0].rsplit("/", 1)[1] for n in got} == {
                "db", "blob", "index", "redolog"}
            left = services._run("zfs", "list", "-H", "-o", "name", "-r", a).stdout.decode()
            assert "standby-drill-" not in left
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_the_drill_on_zfs_volumes_ships_and_streams_to_s3(
        mariadb_available: None, moto: services.MotoServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`standby drill --backend zfs --root DATASET --target s3://...`: every snapshot of the
    primary's datasets goes to the bucket as a `zfs send` stream, redo.log is streamed there
    as it grows, and the standby's datasets are made by the pull's receives from S3; nothing
    committed is lost and every volume's digest equals the reference."""
    support.aws_env(monkeypatch)
    bucket = f"sbz-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    said: list[str] = []
    short = Path(tempfile.mkdtemp(prefix="sbs-"))  # socket paths must stay under 107 bytes
    try:
        (short / "p").mkdir()
        with support.zfs_pools(short / "p") as pools:
            assert pools.zfs is not None
            a, _b = pools.zfs
            rep = drill.run(workdir=short, accounts=3, seed=13, workers=2,
                            set_every_s=4.0, redolog_every_s=1.0,
                            kill_window_s=(15.0, 16.0), groups=4, say=said.append,
                            backend="zfs", root=a, target=f"s3://{bucket}/drill",
                            target_settings=TargetSettings(endpoint_url=moto.url,
                                                           region="us-east-1", retries=2))
            assert rep.ok and rep.equal, rep.as_dict()
            assert rep.committed_ops_lost == 0 and rep.divergent_mailboxes == 0
            assert not rep.gap
            # per volume the proof digests (the redo log itself is what was replayed)
            assert rep.digest_equal == dict.fromkeys(("db", "blob", "index", "all"), True), \
                rep.digest_equal
            assert rep.sets >= 1 and rep.replay_ops > 0
            assert f"target s3://{bucket}/drill, zfs volumes" in rep.notes
            assert any(n.startswith("streamed for ") for n in rep.notes), rep.notes
            # the bucket holds each volume's zfs send streams and the streamed segments
            keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix="drill/") for o in page.get("Contents", [])]
            sent = {m.group(1) for k in keys
                    if (m := re.search(r"/data/([a-z]+)/[^/]+/stream\.zfs", k))}
            assert sent == {"db", "blob", "index", "redolog"}, keys
            assert any("/stream/" in k for k in keys), keys
            assert any("zmplayredo --set latest" in m for m in said)
            left = services._run("zfs", "list", "-H", "-o", "name", "-r", a).stdout.decode()
            assert "standby-drill-" not in left
    finally:
        shutil.rmtree(short, ignore_errors=True)
