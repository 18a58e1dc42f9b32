"""EBS specifics against moto_server: waiting, error translation (no raw ClientError escapes),
atomic grouping per instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from standby.errors import NotFound, ServiceError, UsageError, VolumeError
from standby.snapshot._base import Snapshot, Volume
from standby.snapshot.ebs import EbsBackend
from standby.snapshot.factory import ec2_client
from tests.services import MotoServer, free_port
from tests.test_snapshot_contract import ebs_instance
from tests.test_snapshot_contract import ec2_client as moto_ec2
from tests.test_snapshot_support import VOLS, load, site_config


def test_single_snapshot_tags_wait_and_delete(moto: MotoServer, tmp_path: Path) -> None:
    ec2 = moto_ec2(moto.url)
    _inst, (vid,), _ = ebs_instance(ec2, 1)
    be = EbsBackend(ec2, poll_s=0.01)
    v = Volume("redolog", tmp_path, vid)
    be.check(v)
    (snap,) = be.create([v], "standby-redolog-x", labels={"set-id": "redolog-x",
                                                         "server-id": "srv"})
    (snap,) = be.settle([snap])
    assert snap.identity["state"] == "completed" and snap.ref.startswith("snap-")
    desc = ec2.describe_snapshots(SnapshotIds=[snap.ref])["Snapshots"][0]
    tags = {t["Key"]: t["Value"] for t in desc["Tags"]}
    assert tags == {"Name": "standby-redolog-x", "standby:set-id": "redolog-x",
                    "standby:server-id": "srv", "standby:volume": "redolog"}
    be.destroy(snap)
    assert not be.exists(snap)
    be.destroy(snap)


def test_unattached_volumes_cannot_be_atomic(moto: MotoServer, tmp_path: Path) -> None:
    ec2 = moto_ec2(moto.url)
    a = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    b = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    be = EbsBackend(ec2)
    with pytest.raises(UsageError, match="not attached to an instance"):
        be.atomic_groups([Volume("db", tmp_path, a), Volume("blob", tmp_path, b)])


def test_volumes_on_two_instances_are_two_groups(moto: MotoServer, tmp_path: Path) -> None:
    ec2 = moto_ec2(moto.url)
    _, (a,), _ = ebs_instance(ec2, 1)
    _, (b,), _ = ebs_instance(ec2, 1)
    groups = EbsBackend(ec2).atomic_groups([Volume("db", tmp_path, a),
                                            Volume("blob", tmp_path, b)])
    assert [[v.dataset for v in g] for g in groups] == [[a], [b]]


def test_an_unreachable_endpoint_is_a_service_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    vols = {v: (tmp_path / v, "ebs", f"vol-{i:017x}") for i, v in enumerate(VOLS)}
    s = load(site_config(tmp_path, vols, sections={"snapshot": {
        "ebs_region": "us-east-1", "ebs_endpoint_url": f"http://127.0.0.1:{free_port()}"}}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = ec2_client(s)
    be = EbsBackend(client)
    with pytest.raises(ServiceError, match="DescribeVolumes") as ei:
        be.check(Volume("db", tmp_path, "vol-00000000000000000"))
    assert not isinstance(ei.value, NotFound)


def test_missing_volume_and_snapshot_errors(moto: MotoServer, tmp_path: Path) -> None:
    be = EbsBackend(moto_ec2(moto.url))
    with pytest.raises(VolumeError, match="vol-0123456789abcdef0 does not exist"):
        be.create([Volume("db", tmp_path, "vol-0123456789abcdef0")], "n", labels={})
    assert not be.exists(Snapshot("db", "ebs", "n", "snap-0123456789abcdef0"))


class _Slow:
    """A client whose snapshots never complete (or fail), for the waiting logic."""

    def __init__(self, state: str) -> None:
        self.state = state

    def describe_snapshots(self, **kw: Any) -> dict[str, Any]:
        return {"Snapshots": [{"SnapshotId": i, "State": self.state} for i in kw["SnapshotIds"]]}


def test_waiting_is_bounded_and_errors_are_reported() -> None:
    clock = [0.0]
    be = EbsBackend(_Slow("pending"), wait_timeout_s=30, poll_s=5,
                    sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                    monotonic=lambda: clock[0])
    snap = Snapshot("db", "ebs", "n", "snap-1")
    with pytest.raises(ServiceError, match="not completed within 30"):
        be.settle([snap])
    assert clock[0] == 30
    with pytest.raises(ServiceError, match="failed"):
        EbsBackend(_Slow("error")).settle([snap])
    assert EbsBackend(_Slow("pending"), wait=False).settle([snap]) == [snap]
