"""This is the one table of the calls the S3 target makes, and the IAM policy each role needs.

`CALLS` lists every boto3 S3 client method the S3 target may call, with the IAM action S3
authorises it by, what it touches (the objects under the server's prefix, or the listing of that
prefix), the KMS actions S3 makes on the caller's behalf when the bucket encrypts with a customer
key (SSE-KMS), which role makes it (the primary's shipper, the standby) and whether it deletes.

The S3 target imports this table and calls nothing outside it; `standby target iam-policy`
prints `policy(...)` built from it; the Terraform module's role policies are tested against it
(tests/test_terraform.py) and so are real calls under exactly these policies against an
IAM-enforcing `moto_server` (tests/test_terraform_iam.py). A call the target needs that is not
here fails at AWS with AccessDenied: add the row, and the policy, the module and the tests follow.

Invariant: every key the target reads or writes starts with `server_prefix(prefix, server_id)`
and every listing names a prefix under it, so a role can be held to its own server's objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from standby.errors import UsageError


class Role(StrEnum):
    SHIPPER = "shipper"  # on the primary: standby ship, standby stream, standby prune --target
    STANDBY = "standby"  # at the standby site: standby pull, standby verify


class Scope(StrEnum):
    OBJECTS = "objects"  # arn:aws:s3:::BUCKET/PREFIX/SERVER/*
    LISTING = "listing"  # arn:aws:s3:::BUCKET, only for s3:prefix under PREFIX/SERVER/


@dataclass(frozen=True)
class Call:
    method: str  # the boto3 S3 client method
    action: str  # the IAM action S3 authorises the request by
    scope: Scope
    kms: tuple[str, ...]  # KMS actions S3 needs of the caller under SSE-KMS
    roles: frozenset[Role]
    deletes: bool  # granted only when the bucket has no Object Lock
    used_for: str


_SHIPPER = frozenset({Role.SHIPPER})
_BOTH = frozenset({Role.SHIPPER, Role.STANDBY})
# S3 decrypts the parts already stored to finish a multipart upload under a KMS key, so every
# multipart step needs Decrypt as well as GenerateDataKey (S3's CreateMultipartUpload docs).
_MULTIPART_KMS = ("kms:GenerateDataKey", "kms:Decrypt")

CALLS: tuple[Call, ...] = (
    Call("put_object", "s3:PutObject", Scope.OBJECTS, ("kms:GenerateDataKey",), _SHIPPER, False,
         "small objects: manifests, the target catalog, streamed redo segments"),
    Call("create_multipart_upload", "s3:PutObject", Scope.OBJECTS, _MULTIPART_KMS, _SHIPPER,
         False, "start a snapshot stream of unknown length"),
    Call("upload_part", "s3:PutObject", Scope.OBJECTS, _MULTIPART_KMS, _SHIPPER, False,
         "send one part of a snapshot stream (parallel parts)"),
    Call("complete_multipart_upload", "s3:PutObject", Scope.OBJECTS, _MULTIPART_KMS, _SHIPPER,
         False, "finish a snapshot stream"),
    Call("abort_multipart_upload", "s3:AbortMultipartUpload", Scope.OBJECTS, (), _SHIPPER,
         False, "give up a stream that cannot be resumed"),
    Call("list_parts", "s3:ListMultipartUploadParts", Scope.OBJECTS, (), _SHIPPER, False,
         "resume an interrupted upload without re-sending completed parts"),
    Call("list_objects_v2", "s3:ListBucket", Scope.LISTING, (), _BOTH, False,
         "one listing of the server's prefix finds every set, redolog snapshot and segment"),
    Call("head_object", "s3:GetObject", Scope.OBJECTS, (), _BOTH, False,
         "is a manifest (the mark of a complete snapshot) at the target"),
    Call("get_object", "s3:GetObject", Scope.OBJECTS, ("kms:Decrypt",), _BOTH, False,
         "catalog reads, the stream's position check on start, segment compaction; at the "
         "standby pull and verify"),
    Call("delete_object", "s3:DeleteObject", Scope.OBJECTS, (), _SHIPPER, True,
         "prune --target and compacted segments; a delete marker in the versioned bucket"),
)

_KEY_ARN = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):key/[A-Za-z0-9-]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# S3's endpoint domain per partition: kms:ViaService names S3 in the key's own region.
_DNS_SUFFIX = {"aws-cn": "amazonaws.com.cn"}


def calls_for(role: Role, *, object_lock: bool) -> tuple[Call, ...]:
    """The calls `role` makes; with Object Lock on, none that delete."""
    return tuple(c for c in CALLS if role in c.roles and not (c.deletes and object_lock))


def server_prefix(prefix: str, server_id: str) -> str:
    """Where one server's objects live in the bucket: `PREFIX/SERVER/` (or `SERVER/`)."""
    if not server_id or "/" in server_id:
        raise UsageError(f"server id {server_id!r} cannot name a prefix",
                         hint="use the server's zimbraId, without '/'")
    parts = [p for p in prefix.strip("/").split("/") if p]
    return "/".join([*parts, server_id]) + "/"


def policy(role: Role, *, bucket: str, prefix: str, server_id: str, kms_key_arn: str | None,
           object_lock: bool) -> dict[str, Any]:
    """The IAM policy document `role` needs for its calls in `CALLS`, and nothing more.

    Statements, by Sid: ListServerPrefix (the bucket, when s3:prefix is under the server's
    prefix), ServerObjects (objects under that prefix), PruneServerObjects (its deletes, only
    without Object Lock), SnapshotKey (the KMS actions, on that key, only through S3)."""
    if not _BUCKET.match(bucket):
        raise UsageError(f"{bucket!r} is not an S3 bucket name",
                         hint="3 to 63 lower-case letters, digits, dots and hyphens")
    partition = "aws"
    key = None
    if kms_key_arn is not None:
        key = _KEY_ARN.match(kms_key_arn)
        if key is None:
            raise UsageError(f"{kms_key_arn!r} is not a KMS key ARN",
                             hint="give arn:aws:kms:REGION:ACCOUNT:key/ID: the bucket policy "
                                  "compares each upload's key with the ARN, not an alias or id")
        partition = key.group(1)
    calls = calls_for(role, object_lock=object_lock)
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    objects = f"{bucket_arn}/{server_prefix(prefix, server_id)}*"

    def actions(scope: Scope, deletes: bool) -> list[str]:
        return sorted({c.action for c in calls if c.scope is scope and c.deletes is deletes})

    statements: list[dict[str, Any]] = []
    if listing := actions(Scope.LISTING, False):
        statements.append({
            "Sid": "ListServerPrefix", "Effect": "Allow", "Action": listing,
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [server_prefix(prefix, server_id) + "*"]}},
        })
    for sid, deletes in (("ServerObjects", False), ("PruneServerObjects", True)):
        if acts := actions(Scope.OBJECTS, deletes):
            statements.append({"Sid": sid, "Effect": "Allow", "Action": acts,
                               "Resource": objects})
    kms = sorted({a for c in calls for a in c.kms})
    if key is not None and kms:
        dns = _DNS_SUFFIX.get(partition, "amazonaws.com")
        statements.append({
            "Sid": "SnapshotKey", "Effect": "Allow", "Action": kms, "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": [f"s3.{key.group(2)}.{dns}"]}},
        })
    return {"Version": "2012-10-17", "Statement": statements}
