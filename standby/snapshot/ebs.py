"""EBS snapshots through the EC2 API (boto3): `CreateSnapshot`, `CreateSnapshots`, tags, waiting.

A volume's `dataset` is its EBS volume id (`vol-...`); its path is where it is mounted on this
instance. One volume: `CreateSnapshot`. Several volumes attached to one instance (`--atomic`):
one `CreateSnapshots` with the instance's other data volumes (and its boot volume, unless it is
one of ours) excluded — crash-consistent across them, one instant. Snapshots that come back for
a volume that was not asked for (an endpoint that ignores `ExcludeDataVolumeIds`) are deleted
at once.

Every snapshot is tagged `Name`, `standby:server-id`, `standby:set-id` and `standby:volume`.
Its identity is the snapshot id, with the volume id and the start time AWS records. The point in
time of an EBS snapshot is the API call; `settle` then waits (optionally, with a time limit)
until the snapshots are `completed` so a set is only reported when it can be restored.

An EBS snapshot is taken at the block level and does not see what is still in this host's page
cache, so each volume's file system is synced (`sync -f <path>`) right before the call.

The client comes in as an argument: only the composition root (`factory.ec2_client`) makes one.
`ClientError` and `BotoCoreError` never leave this module; they become `StandbyError`s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from standby import _process
from standby.errors import NotFound, ServiceError, UsageError, VolumeError
from standby.snapshot._base import Snapshot, Volume

TAG_PREFIX = "standby:"


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn botocore errors raised inside into StandbyErrors that say what failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as e:
        err = e.response.get("Error", {})
        code, msg = err.get("Code", "Unknown"), err.get("Message", str(e))
        if code.endswith("NotFound"):
            raise NotFound(f"{what}: {code}: {msg}") from e
        if code in ("UnauthorizedOperation", "AuthFailure", "InvalidClientTokenId"):
            raise ServiceError(f"{what}: {code}: {msg}",
                               hint="the credentials lack ec2:CreateSnapshot(s)/CreateTags/"
                                    "DeleteSnapshot/Describe* permissions") from e
        raise ServiceError(f"{what}: {code}: {msg}") from e
    except BotoCoreError as e:
        raise ServiceError(f"{what}: {e}",
                           hint="check snapshot.ebs_region / ebs_endpoint_url and the AWS "
                                "credentials") from e


def sync_fs(path: Path) -> None:
    """Write this file system's dirty pages to the device (syncfs through `sync -f`)."""
    if path.exists():
        _process.run(_process.Command.of("sync", "-f", path))


def _tags(labels: Mapping[str, str], name: str) -> list[dict[str, str]]:
    tags = [{"Key": "Name", "Value": name}]
    tags += [{"Key": TAG_PREFIX + k, "Value": v} for k, v in sorted(labels.items())]
    return tags


class EbsBackend:
    """`SnapshotBackend` for EBS volumes (`volumes.<name>.dataset = "vol-..."`)."""

    name = "ebs"
    copies = False

    def __init__(self, client: Any, *, wait: bool = True, wait_timeout_s: float = 3600.0,
                 poll_s: float = 5.0, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 sync: Callable[[Path], None] = sync_fs) -> None:
        self.client = client
        self._sync = sync
        self.wait = wait
        self.wait_timeout_s = wait_timeout_s
        self.poll_s = poll_s
        self._sleep = sleep
        self._monotonic = monotonic

    # -- helpers ----------------------------------------------------------------------------
    def _describe_volume(self, v: Volume) -> dict[str, Any]:
        vid = _volume_id(v)
        try:
            with translated(f"volume {v.name}: DescribeVolumes {vid}"):
                vols = self.client.describe_volumes(VolumeIds=[vid])["Volumes"]
        except NotFound as e:
            raise VolumeError(f"volume {v.name}: EBS volume {vid} does not exist in this "
                              "region", hint=f"fix volumes.{v.name}.dataset or "
                                             "snapshot.ebs_region") from e
        if not vols:
            raise VolumeError(f"volume {v.name}: EBS volume {vid} does not exist")
        return dict(vols[0])

    def _instance_of(self, v: Volume) -> str | None:
        att = self._describe_volume(v).get("Attachments") or []
        return att[0].get("InstanceId") if att else None

    # -- SnapshotBackend --------------------------------------------------------------------
    def check(self, volume: Volume) -> None:
        desc = self._describe_volume(volume)
        state = desc.get("State")
        if state not in ("in-use", "available"):
            raise VolumeError(f"volume {volume.name}: EBS volume {_volume_id(volume)} is "
                              f"{state}, cannot snapshot it now")

    def atomic_groups(self, volumes: Sequence[Volume]) -> list[list[Volume]]:
        if len(volumes) < 2:
            return [list(volumes)]
        groups: dict[str, list[Volume]] = {}
        for v in volumes:
            inst = self._instance_of(v)
            if inst is None:
                raise UsageError(f"--atomic: EBS volume {_volume_id(v)} ({v.name}) is not "
                                 "attached to an instance; CreateSnapshots works per instance",
                                 hint="attach it, or take a staggered set (without --atomic)")
            groups.setdefault(inst, []).append(v)
        return list(groups.values())

    def preview(self, volumes: Sequence[Volume], name: str) -> list[str]:
        if len(volumes) == 1:
            return [f"ec2 CreateSnapshot VolumeId={_volume_id(volumes[0])} Name={name}"]
        inst = self._instance_of(volumes[0])
        return [f"ec2 CreateSnapshots InstanceId={inst} volumes="
                + ",".join(_volume_id(v) for v in volumes) + f" Name={name}"]

    def create(self, volumes: Sequence[Volume], name: str, *,
               labels: Mapping[str, str]) -> list[Snapshot]:
        for v in volumes:
            self._sync(v.path)
        if len(volumes) == 1:
            return [self._create_one(volumes[0], name, labels)]
        return self._create_many(volumes, name, labels)

    def _create_one(self, v: Volume, name: str, labels: Mapping[str, str]) -> Snapshot:
        vid = _volume_id(v)
        tags = _tags({**labels, "volume": v.name}, name)
        try:
            with translated(f"volume {v.name}: CreateSnapshot of {vid}"):
                r = self.client.create_snapshot(
                    VolumeId=vid, Description=f"standby {name} {v.name}",
                    TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
        except NotFound as e:
            raise VolumeError(f"volume {v.name}: EBS volume {vid} does not exist") from e
        return self._snapshot(v, name, r)

    def _create_many(self, volumes: Sequence[Volume], name: str,
                     labels: Mapping[str, str]) -> list[Snapshot]:
        (group,) = self.atomic_groups(volumes)  # one instance, or UsageError above
        inst = self._instance_of(group[0])
        assert inst is not None
        wanted = {_volume_id(v): v for v in volumes}
        with translated(f"DescribeInstances {inst}"):
            res = self.client.describe_instances(InstanceIds=[inst])
        instance = res["Reservations"][0]["Instances"][0]
        root = instance.get("RootDeviceName")
        attached = {m["Ebs"]["VolumeId"]: m["DeviceName"]
                    for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m}
        exclude_boot = all(attached.get(vid) != root for vid in wanted)
        others = [vid for vid, dev in attached.items() if vid not in wanted and dev != root]
        spec: dict[str, Any] = {"InstanceId": inst, "ExcludeBootVolume": exclude_boot}
        if others:
            spec["ExcludeDataVolumeIds"] = others
        with translated(f"CreateSnapshots for instance {inst}"):
            r = self.client.create_snapshots(
                InstanceSpecification=spec, Description=f"standby {name}",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(labels, name)}])
        got = {s["VolumeId"]: s for s in r.get("Snapshots", [])}
        for vid, s in got.items():
            if vid not in wanted:  # the endpoint ignored the exclusion: not ours to keep
                self._delete_id(s["SnapshotId"])
        missing = [vid for vid in wanted if vid not in got]
        if missing:
            for vid in wanted:
                if vid in got:
                    self._delete_id(got[vid]["SnapshotId"])
            raise ServiceError(f"CreateSnapshots for instance {inst} returned no snapshot of "
                               + ", ".join(missing))
        snaps = []
        for vid, v in wanted.items():
            sid = got[vid]["SnapshotId"]
            with translated(f"CreateTags on {sid}"):
                self.client.create_tags(Resources=[sid], Tags=[
                    {"Key": TAG_PREFIX + "volume", "Value": v.name}])
            snaps.append(self._snapshot(v, name, got[vid]))
        return snaps

    def _snapshot(self, v: Volume, name: str, r: Mapping[str, Any]) -> Snapshot:
        start = r.get("StartTime")
        ident: dict[str, Any] = {"snapshot_id": r["SnapshotId"], "volume_id": r.get("VolumeId"),
                                 "state": r.get("State")}
        if start is not None:
            ident["start_time"] = start.isoformat() if hasattr(start, "isoformat") else str(start)
        return Snapshot(volume=v.name, backend=self.name, name=name, ref=r["SnapshotId"],
                        identity=ident)

    def settle(self, snapshots: Sequence[Snapshot]) -> list[Snapshot]:
        if not snapshots or not self.wait:
            return list(snapshots)
        ids = [s.ref for s in snapshots]
        deadline = self._monotonic() + self.wait_timeout_s
        while True:
            with translated("DescribeSnapshots " + ", ".join(ids)):
                desc = {d["SnapshotId"]: d
                        for d in self.client.describe_snapshots(SnapshotIds=ids)["Snapshots"]}
            failed = [i for i in ids if desc.get(i, {}).get("State") == "error"]
            if failed:
                raise ServiceError("EBS snapshot(s) " + ", ".join(failed) + " failed (state "
                                   "error)", hint="see the EC2 console for the reason")
            if all(desc.get(i, {}).get("State") == "completed" for i in ids):
                break
            if self._monotonic() >= deadline:
                raise ServiceError(f"EBS snapshots {', '.join(ids)} not completed within "
                                   f"{self.wait_timeout_s} s",
                                   hint="raise snapshot.ebs_wait_timeout_s or set "
                                        "snapshot.ebs_wait = false")
            self._sleep(self.poll_s)
        return [Snapshot(s.volume, s.backend, s.name, s.ref,
                         {**s.identity, "state": "completed"}) for s in snapshots]

    def exists(self, snapshot: Snapshot) -> bool:
        try:
            with translated(f"DescribeSnapshots {snapshot.ref}"):
                r = self.client.describe_snapshots(SnapshotIds=[snapshot.ref])
        except NotFound:
            return False
        return bool(r.get("Snapshots"))

    def destroy(self, snapshot: Snapshot) -> None:
        self._delete_id(snapshot.ref)

    def _delete_id(self, sid: str) -> None:
        try:
            with translated(f"DeleteSnapshot {sid}"):
                self.client.delete_snapshot(SnapshotId=sid)
        except NotFound:
            return


def _volume_id(v: Volume) -> str:
    if not v.dataset:
        raise VolumeError(f"volume {v.name}: the ebs backend needs volumes.{v.name}.dataset "
                          "(the EBS volume id)")
    return v.dataset
