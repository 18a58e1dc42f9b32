"""`standby target ...`: what a shipping target needs from its side; for now the IAM policy.

`standby target iam-policy --role shipper|standby` prints the exact IAM policy (actions,
resources, conditions) the S3 target's calls need, built by `standby.transfer.s3_calls.policy`
from the one table of those calls; `--json` prints the policy document itself, ready for
`aws iam put-role-policy --policy-document file://...`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from standby.cli import common
from standby.errors import ConfigError, UsageError
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
    bucket: Annotated[str, typer.Option("--bucket", help="The target's bucket.")],
    prefix: Annotated[str, typer.Option(
        "--prefix", help="The target's key prefix (PREFIX of s3://BUCKET/PREFIX).")] = "",
    server_id: Annotated[str | None, typer.Option(
        "--server-id", help="The server whose objects the role reaches (default: server_id "
        "of the configuration).")] = None,
    kms_key_id: Annotated[str | None, typer.Option(
        "--kms-key-id", help="ARN of the bucket's KMS key (SSE-KMS); omit for SSE-S3.")] = None,
    object_lock: Annotated[bool, typer.Option(
        "--object-lock/--no-object-lock", help="The bucket has Object Lock: the shipper gets "
        "no delete, so prune removes nothing at the target.")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the IAM policy document (JSON).")] = False,
) -> None:
    """Print the exact IAM policy a role needs for the S3 target's calls, and nothing more."""
    sid = server_id
    if sid is None:
        try:
            sid = common.settings(ctx).server_id
        except ConfigError as e:
            raise UsageError(f"no --server-id, and no server_id to take: {e.message}",
                             hint="pass --server-id ID, or --config FILE") from e
    document = policy(role, bucket=bucket, prefix=prefix, server_id=sid,
                      kms_key_arn=kms_key_id, object_lock=object_lock)
    if json_out:
        common.emit_json(document)
        return
    common.emit("\n".join(describe(role, document, bucket=bucket, prefix=prefix,
                                   server_id=sid, object_lock=object_lock)))
