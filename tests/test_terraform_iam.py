"""Least privilege for real: the generated policies against an IAM-enforcing `moto_server`.

Users get exactly `standby.transfer.s3_calls.policy(role, ...)` and nothing else; with their
keys every call the table lists for their role succeeds, and only those calls are made; the
shipper cannot touch another server's prefix nor delete under Object Lock; the standby cannot
write.

What moto checks, and what it does not (moto 5.2, moto/iam/access_control.py):
- it checks a policy's Action and Resource against each request, and Object Lock retention
  when a version is deleted;
- it takes conditions it does not implement as met: only StringEquals on keys it knows is
  evaluated, so the ListBucket statement's `s3:prefix` condition is not enforced here and a
  listing of another server's prefix succeeds; the HCL tests hold the condition in place;
- it does not authorise the KMS calls S3 makes under SSE-KMS, and checks direct KMS calls
  against the resource "*", so a key-scoped KMS grant is neither proven nor refused here;
- it evaluates a bucket policy's Deny statements with their conditions taken as met, so the
  module's TLS-only and encryption denies (conditional by nature) would refuse everything: the
  buckets here carry none, and tests/test_terraform.py checks those statements.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from standby.transfer.s3_calls import Role, calls_for, policy, server_prefix
from tests.services import IamMotoServer, MotoServer, require

# The admin's user, its policy and its key are made before moto starts enforcing.
FREE_ACTIONS = 3
REGION = "eu-west-1"
PREFIX, SERVER, OTHER = "standby", "srv-a", "srv-b"
OPEN, LOCKED = "site-open", "site-locked"
PART = 5 * 1024 * 1024  # S3's smallest part but the last


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str


@dataclass
class Site:
    url: str
    admin: Keys
    kms_key_arn: str
    users: dict[tuple[Role, str], Keys]

    def client(self, service: str, keys: Keys) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=keys.access_key,
                            aws_secret_access_key=keys.secret_key,
                            config=Config(retries={"max_attempts": 1}))

    def s3(self, role: Role | None, bucket: str = OPEN) -> Any:
        return self.client("s3", self.admin if role is None else self.users[(role, bucket)])


def _user(iam: Any, name: str, document: dict[str, Any]) -> Keys:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    ok, why = MotoServer.available()
    require("moto_server", ok, why)
    with IamMotoServer(FREE_ACTIONS) as moto:
        anyone = Site(moto.url, Keys("bootstrap", "bootstrap"), "", {})
        admin = _user(anyone.client("iam", anyone.admin), "admin", {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        s = Site(moto.url, admin, "", {})
        s.kms_key_arn = s.client("kms", admin).create_key()["KeyMetadata"]["Arn"]
        s3 = s.s3(None)
        where = {"LocationConstraint": REGION}
        s3.create_bucket(Bucket=OPEN, CreateBucketConfiguration=where)
        s3.create_bucket(Bucket=LOCKED, CreateBucketConfiguration=where,
                         ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(Bucket=LOCKED, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
        for bucket in (OPEN, LOCKED):
            s3.put_bucket_versioning(Bucket=bucket,
                                     VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": s.kms_key_arn},
                    "BucketKeyEnabled": True}]})
            s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{OTHER}/catalog.json", Body=b"{}")
        iam = s.client("iam", admin)
        for role in Role:
            for bucket in (OPEN, LOCKED):
                s.users[(role, bucket)] = _user(iam, f"{role}-{bucket}", _policy(
                    s, role, bucket))
        yield s


def _policy(s: Site, role: Role, bucket: str) -> dict[str, Any]:
    return policy(role, bucket=bucket, prefix=PREFIX, server_id=SERVER,
                  kms_key_arn=s.kms_key_arn, object_lock=bucket == LOCKED)


class Recorder:
    """The S3 operations a client made that succeeded, by their API names."""

    def __init__(self, client: Any) -> None:
        self.ok: set[str] = set()
        self.api = client.meta.method_to_api_mapping
        client.meta.events.register("after-call.s3", self._after)

    def _after(self, http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            self.ok.add(model.name)

    def expected(self, role: Role, object_lock: bool) -> set[str]:
        return {self.api[c.method] for c in calls_for(role, object_lock=object_lock)}


def _denied(call: Callable[[], Any]) -> None:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value.response


def _ship(s3: Any, bucket: str, key_arn: str, *, prune: bool) -> dict[str, bytes]:
    """What the shipper does, call by call of its table: returns what it left at the target."""
    sp = server_prefix(PREFIX, SERVER)
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn}
    # Under Object Lock S3 wants a checksum with every upload.
    catalog, stream = b'{"sets": ["s1"]}', b"z" * PART + b"tail"
    s3.put_object(Bucket=bucket, Key=f"{sp}catalog.json", Body=catalog,
                  ChecksumAlgorithm="SHA256", **sse)
    key = f"{sp}sets/s1/db.zfs.zst"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **sse)["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
                            Body=stream[(n - 1) * PART:n * PART])["ETag"] for n in (1, 2)]
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)["Parts"]
    assert [p["ETag"] for p in parts] == etags
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)]})
    gone = s3.create_multipart_upload(Bucket=bucket, Key=f"{sp}sets/s0/db.zst", **sse)
    s3.abort_multipart_upload(Bucket=bucket, Key=f"{sp}sets/s0/db.zst",
                              UploadId=gone["UploadId"])
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=sp)
    assert {o["Key"] for o in listed["Contents"]} >= {f"{sp}catalog.json", key}
    assert s3.head_object(Bucket=bucket, Key=key)["SSEKMSKeyId"] == key_arn
    assert s3.get_object(Bucket=bucket, Key=f"{sp}catalog.json")["Body"].read() == catalog
    if prune:
        s3.put_object(Bucket=bucket, Key=f"{sp}stream/seg-1", Body=b"r", **sse)
        s3.delete_object(Bucket=bucket, Key=f"{sp}stream/seg-1")
    return {f"{sp}catalog.json": catalog, key: stream}


@pytest.mark.parametrize("bucket", [OPEN, LOCKED], ids=["no-lock", "object-lock"])
def test_shipper_makes_every_call_of_its_table_and_no_other(site: Site, bucket: str) -> None:
    s3 = site.s3(Role.SHIPPER, bucket)
    seen = Recorder(s3)
    _ship(s3, bucket, site.kms_key_arn, prune=bucket == OPEN)
    assert seen.ok == seen.expected(Role.SHIPPER, bucket == LOCKED)
    got = site.client("iam", site.admin).get_user_policy(
        UserName=f"shipper-{bucket}", PolicyName=f"shipper-{bucket}")["PolicyDocument"]
    assert (json.loads(got) if isinstance(got, str) else got) == _policy(
        site, Role.SHIPPER, bucket)


@pytest.mark.parametrize("bucket", [OPEN, LOCKED], ids=["no-lock", "object-lock"])
def test_standby_makes_every_call_of_its_table_and_no_other(site: Site, bucket: str) -> None:
    shipped = _ship(site.s3(Role.SHIPPER, bucket), bucket, site.kms_key_arn, prune=False)
    s3 = site.s3(Role.STANDBY, bucket)
    seen = Recorder(s3)
    sp = server_prefix(PREFIX, SERVER)
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=sp)["Contents"]}
    assert listed >= set(shipped)
    for key, body in shipped.items():
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert seen.ok == seen.expected(Role.STANDBY, bucket == LOCKED)


def test_shipper_cannot_reach_another_servers_prefix(site: Site) -> None:
    s3 = site.s3(Role.SHIPPER, OPEN)
    other = f"{PREFIX}/{OTHER}/catalog.json"
    _denied(lambda: s3.get_object(Bucket=OPEN, Key=other))
    _denied(lambda: s3.head_object(Bucket=OPEN, Key=other))
    _denied(lambda: s3.put_object(Bucket=OPEN, Key=other, Body=b"overwritten"))
    _denied(lambda: s3.delete_object(Bucket=OPEN, Key=other))
    _denied(lambda: s3.create_multipart_upload(Bucket=OPEN, Key=f"{PREFIX}/{OTHER}/big"))
    _denied(lambda: s3.put_object(Bucket=OPEN, Key="outside-any-prefix", Body=b"x"))
    # Nor another bucket: its policy names only its own.
    _denied(lambda: s3.put_object(Bucket=LOCKED, Key=f"{server_prefix(PREFIX, SERVER)}x",
                                  Body=b"x", ChecksumAlgorithm="SHA256"))
    assert site.s3(None).get_object(Bucket=OPEN, Key=other)["Body"].read() == b"{}"


def test_shipper_cannot_delete_a_locked_object(site: Site) -> None:
    sp = server_prefix(PREFIX, SERVER)
    s3 = site.s3(Role.SHIPPER, LOCKED)
    put = s3.put_object(Bucket=LOCKED, Key=f"{sp}sets/s9/manifest.json", Body=b"m",
                        ChecksumAlgorithm="SHA256", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=site.kms_key_arn)
    version = put["VersionId"]
    _denied(lambda: s3.delete_object(Bucket=LOCKED, Key=f"{sp}sets/s9/manifest.json"))
    _denied(lambda: s3.delete_object(Bucket=LOCKED, Key=f"{sp}sets/s9/manifest.json",
                                     VersionId=version))
    # The lock itself holds even for the admin, whose policy allows everything ...
    admin = site.s3(None)
    _denied(lambda: admin.delete_object(Bucket=LOCKED, Key=f"{sp}sets/s9/manifest.json",
                                        VersionId=version))
    assert admin.get_object(Bucket=LOCKED, Key=f"{sp}sets/s9/manifest.json",
                            VersionId=version)["Body"].read() == b"m"
    # ... while the same delete in the bucket without a lock goes through.
    other = admin.put_object(Bucket=OPEN, Key=f"{sp}sets/s9/manifest.json", Body=b"m")
    admin.delete_object(Bucket=OPEN, Key=f"{sp}sets/s9/manifest.json",
                        VersionId=other["VersionId"])


@pytest.mark.parametrize("bucket", [OPEN, LOCKED], ids=["no-lock", "object-lock"])
def test_standby_cannot_write(site: Site, bucket: str) -> None:
    sp = server_prefix(PREFIX, SERVER)
    shipper = site.s3(Role.SHIPPER, bucket)
    pending = shipper.create_multipart_upload(Bucket=bucket, Key=f"{sp}pending")["UploadId"]
    s3 = site.s3(Role.STANDBY, bucket)
    _denied(lambda: s3.put_object(Bucket=bucket, Key=f"{sp}catalog.json", Body=b"forged",
                                  ChecksumAlgorithm="SHA256"))
    _denied(lambda: s3.create_multipart_upload(Bucket=bucket, Key=f"{sp}forged"))
    _denied(lambda: s3.upload_part(Bucket=bucket, Key=f"{sp}pending", UploadId=pending,
                                   PartNumber=1, Body=b"x"))
    _denied(lambda: s3.abort_multipart_upload(Bucket=bucket, Key=f"{sp}pending",
                                              UploadId=pending))
    _denied(lambda: s3.delete_object(Bucket=bucket, Key=f"{sp}catalog.json"))
    shipper.abort_multipart_upload(Bucket=bucket, Key=f"{sp}pending", UploadId=pending)
