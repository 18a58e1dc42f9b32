"""`standby target ...`: what a shipping target needs from its side; for now the IAM policy.

`standby target iam-policy --role shipper|standby` prints the exact IAM policy (actions,
resources, conditions) the S3 target's calls need, built by `standby.transfer.s3_calls.policy`
from the one table of those calls; `--json` prints the policy document itself, ready for
`aws iam put-role-policy --policy-document file://...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from standby.cli import common
from standby.errors import ConfigError, UsageError
from standby.settings import Settings
from standby.transfer._base import parse_url
from standby.transfer.s3_calls import Role, calls_for, policy, server_prefix

app = typer.Typer(help="Shipping targets: the IAM policy an S3 target needs.",
                  no_args_is_help=True)

_CONDITION_WORDS = {"StringLike": "is like", "StringEquals": "is"}


def describe(role: Role, document: dict[str, Any], *, bucket: str, prefix: str,
             server_id: str, object_lock: bool) -> list[str]:
    """The policy in words, one statement after another, then the calls it covers."""
    lock = "on: no deletes" if object_lock else "off"
    lines = [f"IAM policy for the {role} of server {server_id} in "
             f"s3://{bucket}/{server_prefix(prefix, server_id)} (Object Lock {lock}):"]
    for st in document["Statement"]:
        lines.append(f"  {st['Sid']:<20} allow {', '.join(st['Action'])}")
        on = f"{'':<22} on {st['Resource']}"
        for op, tests in st.get("Condition", {}).items():
            for key, values in tests.items():
                shown = ", ".join(values) if isinstance(values, list) else values
                on += f" when {key} {_CONDITION_WORDS.get(op, op)} {shown}"
        lines.append(on)
    calls = calls_for(role, object_lock=object_lock)
    lines.append(f"S3 calls covered: {', '.join(c.method for c in calls)}.")
    if not any(st["Sid"] == "SnapshotKey" for st in document["Statement"]):
        lines.append("No KMS statement: without --kms-key-id the bucket is taken to encrypt "
                     "with SSE-S3.")
    return lines


@app.command("iam-policy")
def iam_policy(
    ctx: typer.Context,
    role: Annotated[Role, typer.Option(
        "--role", help="shipper (ship, stream, prune on the primary) or standby (pull, "
        "verify).", case_sensitive=False)],
    bucket: Annotated[str | None, typer.Option(
        "--bucket", help="The target's bucket (default: the bucket of target.url).")] = None,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="The target's key prefix, PREFIX of s3://BUCKET/PREFIX (default: the "
        "prefix of target.url).")] = None,
    server_id: Annotated[str | None, typer.Option(
        "--server-id", help="The server whose objects the role reaches (default: server_id "
        "of the configuration).")] = None,
    kms_key_id: Annotated[str | None, typer.Option(
        "--kms-key-id", help="ARN of the bucket's KMS key (SSE-KMS; default: target.kms_key_id)"
        "; without one, SSE-S3.")] = None,
    object_lock: Annotated[bool | None, typer.Option(
        "--object-lock/--no-object-lock", help="The bucket has Object Lock: the shipper gets "
        "no delete, so prune removes nothing at the target (default: target.object_lock).",
        show_default=False)] = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the IAM policy document (JSON).")] = False,
) -> None:
    """Print the exact IAM policy a role needs for the S3 target's calls, and nothing more.

    What a flag does not say comes from the configuration: the bucket and prefix of an s3://
    target.url, target.kms_key_id, target.object_lock and server_id."""
    need_config = bucket is None or server_id is None
    s: Settings | None = None
    try:
        s = common.settings(ctx)
    except (ConfigError, UsageError) as e:
        if need_config:
            raise UsageError(f"a flag is missing, and the configuration to take it from could "
                             f"not be read: {e.message}",
                             hint="pass --bucket and --server-id, or --config FILE") from e
    d = policy_defaults(s)
    bucket = bucket if bucket is not None else d.bucket
    if not bucket:
        raise UsageError("no bucket: target.url is not an s3:// URL and --bucket is not given",
                         hint="pass --bucket BUCKET, or set target.url = 's3://BUCKET/PREFIX'")
    prefix = prefix if prefix is not None else d.prefix
    sid = server_id if server_id is not None else d.server_id
    kms = kms_key_id if kms_key_id is not None else d.kms_key_id
    lock = object_lock if object_lock is not None else d.object_lock
    document = policy(role, bucket=bucket, prefix=prefix, server_id=sid, kms_key_arn=kms,
                      object_lock=lock)
    if json_out:
        common.emit_json(document)
        return
    common.emit("\n".join(describe(role, document, bucket=bucket, prefix=prefix,
                                   server_id=sid, object_lock=lock)))


@dataclass(frozen=True)
class PolicyDefaults:
    """What `[target]` and `server_id` say about the policy's bucket, prefix, key and lock."""

    bucket: str = ""
    prefix: str = ""
    server_id: str = ""
    kms_key_id: str | None = None
    object_lock: bool = False


def policy_defaults(s: Settings | None) -> PolicyDefaults:
    """The defaults a configuration gives (none without one, or with a target that is not S3)."""
    if s is None:
        return PolicyDefaults()
    t = s.target
    bucket = prefix = ""
    if t.url:
        u = parse_url(t.url)
        if u.scheme == "s3":
            bucket, prefix = u.bucket, u.path
    return PolicyDefaults(bucket=bucket, prefix=prefix, server_id=s.server_id,
                          kms_key_id=t.kms_key_id, object_lock=t.object_lock)
