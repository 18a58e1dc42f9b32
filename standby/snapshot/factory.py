"""Backends from settings: the composition root of this package.

Only here (and in the CLI, which calls this) is an EC2 client made; backends take it as an
argument. Backends are built on demand, for the ones the configuration uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from standby.errors import ConfigError
from standby.settings import Settings
from standby.snapshot._base import SnapshotBackend, Volume


def ec2_client(s: Settings) -> Any:
    import boto3

    from standby.snapshot.ebs import translated

    with translated("creating the EC2 client"):
        return boto3.client("ec2", region_name=s.snapshot.ebs_region,
                            endpoint_url=s.snapshot.ebs_endpoint_url)


def backend(name: str, s: Settings, *, ec2: Callable[[], Any] | None = None) -> SnapshotBackend:
    sn = s.snapshot
    if name == "zfs":
        from standby.snapshot.zfs import ZfsBackend

        return ZfsBackend(program=sn.zfs_program, use_lzc=sn.use_pyzfs)
    if name == "btrfs":
        from standby.snapshot.btrfs import BtrfsBackend

        return BtrfsBackend(program=sn.btrfs_program, snapshot_dir=sn.btrfs_snapshot_dir)
    if name == "lvm":
        from standby.snapshot.lvm import LvmBackend

        return LvmBackend(size=sn.lvm_snapshot_size)
    if name == "ebs":
        from standby.snapshot.ebs import EbsBackend

        client = (ec2 or (lambda: ec2_client(s)))()
        return EbsBackend(client, wait=sn.ebs_wait, wait_timeout_s=sn.ebs_wait_timeout_s)
    if name == "dir":
        from standby.snapshot.dir import DirBackend

        return DirBackend(sn.dir_snapshot_dir or (s.state_dir / "snapshots"))
    raise ConfigError(f"unknown snapshot backend {name!r}")


def backends(s: Settings, *, ec2: Callable[[], Any] | None = None) -> dict[str, SnapshotBackend]:
    """One backend per backend name the volumes use."""
    names = sorted({v.backend for _, v in s.volumes.items()})
    return {n: backend(n, s, ec2=ec2) for n in names}


def volumes(s: Settings) -> dict[str, Volume]:
    return {n: Volume(n, v.path, v.dataset) for n, v in s.volumes.items()}
