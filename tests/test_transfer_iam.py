"""The S3 target keeps the table of its calls true: under exactly the policies
`s3_calls.policy` generates from it, against an IAM-enforcing `moto_server`, the shipper's role
ships (multipart included), resumes, prunes and streams the redo log (segments, final markers,
compaction), the standby's role pulls and verifies, and the
standby's role cannot ship (a clear error, exit 3). A call the target made outside the table
would be refused here."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from standby.errors import ConfigError
from standby.transfer import prune as target_prune
from standby.redolog.position import reach
from standby.transfer import factory, pull, ship, stream_keys, stream_pull, verify
from standby.transfer.objects import ObjectTarget
from standby.transfer.s3 import CALLED
from standby.transfer.s3_calls import CALLS, Role, policy
from tests.services import IamMotoServer, MotoServer, require
from tests.stream_util import Primary
from tests.test_transfer_support import fill, make_rig

REGION = "us-east-1"


def _keys(iam: Any, name: str, doc: dict[str, Any]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(doc))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]


def _bucket_and_iam(moto: IamMotoServer) -> tuple[str, Any]:
    """A new bucket, made by an admin user, and that admin's IAM client."""
    def client(service: str, key: tuple[str, str]) -> Any:
        return boto3.client(service, endpoint_url=moto.url, region_name=REGION,
                            aws_access_key_id=key[0], aws_secret_access_key=key[1])

    admin = _keys(client("iam", ("boot", "boot")), "admin", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    bucket = f"sb-{uuid.uuid4().hex[:10]}"
    client("s3", admin).create_bucket(Bucket=bucket)
    return bucket, client("iam", admin)


def test_the_target_calls_only_what_the_table_lists() -> None:
    assert CALLED == {c.method for c in CALLS}
    source = (Path(__file__).parents[1] / "standby/transfer/s3.py").read_text()
    import re

    used = set(re.findall(r'_call\(\s*"([a-z_0-9]+)"', source))
    assert used and used <= CALLED, used - CALLED


def test_shipper_and_standby_roles_under_the_generated_policies(
        tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ok, why = MotoServer.available()
    require("moto_server", ok, why)
    with IamMotoServer(3) as moto:
        bucket, iam = _bucket_and_iam(moto)
        r = make_rig("file", tmp_path, request, sections={"target": {
            "endpoint_url": moto.url, "region": REGION, "part_size_mb": 5, "retries": 1,
            "concurrency": 2}})
        keys = {role: _keys(iam, f"{role}", policy(
            role, bucket=bucket, prefix="site", server_id=r.primary.server_id,
            kms_key_arn=None, object_lock=False)) for role in Role}

        def as_role(role: Role) -> None:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[role][0])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[role][1])

        r.url = f"s3://{bucket}/site"
        fill(r)
        r.write("db", "data/ibdata1", os.urandom(12 << 20))  # a multipart stream
        r.take("set")
        r.write("blob", "x.msg", b"x")
        r.take("set")
        as_role(Role.STANDBY)
        with pytest.raises(ConfigError, match="denied"):
            ship.ship(r.primary, r.target())
        as_role(Role.SHIPPER)
        res = ship.ship(r.primary, r.target())
        assert isinstance(res, ship.ShipResult) and len(res.manifests) == 2
        assert max(x["parts_sent"] for x in res.shipped) >= 3
        as_role(Role.STANDBY)
        assert verify.verify(r.target("standby")).ok
        p = pull.plan(r.target("standby"))
        pull.pull(r.standby, r.target("standby"), p)
        assert r.standby_tree("blob") == r.expect(p.set_manifest, "blob")
        as_role(Role.SHIPPER)
        out = target_prune.prune(r.primary, r.target(), now_ms=None)
        assert not out.errors


def test_stream_under_the_shippers_policy_and_its_pull_under_the_standbys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`standby stream` (segments, the final marker, compaction's deletes) with the shipper's
    generated policy; the standby's extends its redolog volume from them and cannot stream."""
    ok, why = MotoServer.available()
    require("moto_server", ok, why)
    with IamMotoServer(3) as moto:
        bucket, iam = _bucket_and_iam(moto)
        p = Primary(tmp_path / "primary", stream={"interval_ms": 100}, target={
            "endpoint_url": moto.url, "region": REGION, "retries": 1})
        keys = {role: _keys(iam, f"{role}", policy(
            role, bucket=bucket, prefix="site", server_id=p.s.server_id,
            kms_key_arn=None, object_lock=False)) for role in Role}

        def as_role(role: Role) -> None:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[role][0])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[role][1])

        url = f"s3://{bucket}/site"
        sb_vol = tmp_path / "standby-redolog"
        p.txns(3)
        shutil.copytree(p.s.volumes.redolog.path, sb_vol)  # "the redolog snapshot"
        as_role(Role.SHIPPER)
        sm = p.streamer(url)
        sm.start()
        for _ in range(3):
            p.txns(4)
            p.clock.advance(200)
            sm.step()
        p.w.rollover(force=True)
        p.txns(2)
        for _ in range(3):
            p.clock.advance(200)
            sm.step()
        as_role(Role.STANDBY)
        target = factory.open_target(url, p.s)
        listing = stream_keys.parse(target.store.list(stream_keys.PREFIX))
        first = min(listing.seqs)
        assert first in listing.finals and len(listing.segments[first]) == 1  # compacted
        sb = dataclasses.replace(p.s, volumes=dataclasses.replace(
            p.s.volumes, redolog=dataclasses.replace(p.s.volumes.redolog, path=sb_vol)))
        assert isinstance(target, ObjectTarget)
        out = stream_pull.extend(sb, target)
        mine = reach(p.s.volumes.redolog.path)
        assert out is not None and (out.seq, out.offset) == (mine.seq, mine.offset)
        assert (sb_vol / "redo.log").read_bytes() == p.redo.read_bytes()
        # The standby's role cannot write a segment.
        with pytest.raises(ConfigError, match="denied"):
            target.store.put(f"{stream_keys.PREFIX}probe", b"x")
