"""terraform/ checked without terraform: parsed with python-hcl2 (checkov's fork), run through
checkov, and its role policies held equal to what `standby target iam-policy` generates from
the table of S3 calls (standby/transfer/s3_calls.py).

bc-python-hcl2 gives every attribute as a one-element list and every expression as its source
text inside "${...}"; `_render` substitutes the references a policy uses with known values, so a
policy in HCL becomes the JSON document IAM would receive, and fails on any reference it does
not know.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby.errors import UsageError
from standby.transfer.s3_calls import CALLS, Role, Scope, calls_for, policy, server_prefix
from tests.services import write_config
from tests.test_snapshot_cli import _logs_to_a_stream_that_stays_open, run  # noqa: F401

ROOT = Path(__file__).resolve().parents[1] / "terraform"
SITE = ROOT / "modules" / "standby-site"
BUCKET = ROOT / "modules" / "standby-bucket"
TF_FILES = sorted(ROOT.rglob("*.tf"))

# Values the tests give the references a role policy makes.
B, PFX, SRV, REGION = "site-bucket", "standby", "b8d8a5a3-93c1", "eu-west-1"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TARGET_KEYS = {"url", "region", "kms_key_id", "object_lock", "storage_class"}


@cache
def _parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return hcl2.load(f)


def _module(folder: Path) -> dict[str, list[Any]]:
    """All top-level blocks of one module, merged over its files."""
    merged: dict[str, list[Any]] = {}
    for f in sorted(folder.glob("*.tf")):
        for kind, blocks in _parse(f).items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def _named(folder: Path, kind: str, type_: str | None = None) -> dict[str, Any]:
    """{name: body} of `resource`/`data` blocks of one type, or of `variable`/`output`/..."""
    out: dict[str, Any] = {}
    for block in _module(folder).get(kind, []):
        if type_ is None:
            out.update(block)
        elif type_ in block:
            out.update(block[type_])
    return out


def _one(v: Any) -> Any:
    """An attribute's value: bc-python-hcl2 wraps each in a one-element list."""
    assert isinstance(v, list) and len(v) == 1, v
    return v[0]


def _norm(expr: str) -> str:
    """An expression without white space, quotes and ${ } wrappers, to compare with HCL text."""
    return re.sub(r"[\s'\"]|\$\{|\}", "", expr)


def _locals(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block in _module(folder).get("locals", []):
        out.update({k: _one(v) for k, v in block.items() if not k.startswith("__")})
    return out


def _render(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        ref = m.group(1)
        assert ref in env, f"the test does not know the value of {ref!r} (in {text!r})"
        return env[ref]

    out = re.sub(r"\$\{([A-Za-z0-9_.\[\]]+)\}", sub, text)
    assert "${" not in out, f"an expression the test cannot render: {text!r}"
    return out


def _site_env() -> dict[str, str]:
    env = {
        "var.prefix": PFX, "var.server_id": SRV,
        "module.bucket.bucket_arn": f"arn:aws:s3:::{B}", "module.bucket.kms_key_arn": KEY,
        "module.bucket.region": REGION, "data.aws_partition.current.dns_suffix": "amazonaws.com",
    }
    for name, expr in _locals(SITE).items():
        if name in ("server_prefix", "objects_arn"):
            env[f"local.{name}"] = _render(expr, env)
    return env


def _dynamic_on(for_each: str, *, object_lock: bool) -> bool:
    """The one for_each the role policies use: the prune statement exists without a lock."""
    assert for_each == "${var.object_lock == None ? ['prune'] : []}", (
        f"the test does not know for_each {for_each!r}: teach _dynamic_on")
    return not object_lock


def _statement(st_: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    resources = [_render(r, env) for r in _one(st_["resources"])]
    out: dict[str, Any] = {
        "Sid": _one(st_["sid"]), "Effect": _one(st_.get("effect", ["Allow"])),
        "Action": sorted(_one(st_["actions"])),
        "Resource": resources[0] if len(resources) == 1 else resources,
    }
    for cond in st_.get("condition", []):
        out.setdefault("Condition", {}).setdefault(_one(cond["test"]), {})[
            _one(cond["variable"])] = [_render(v, env) for v in _one(cond["values"])]
    return out


def _hcl_policy(role: Role, *, object_lock: bool) -> dict[str, dict[str, Any]]:
    """The role's policy as Terraform builds it, by Sid."""
    doc = _named(SITE, "data", "aws_iam_policy_document")[str(role)]
    env = _site_env()
    statements = [_statement(s, env) for s in doc.get("statement", [])]
    for dyn in doc.get("dynamic", []):
        block = dyn["statement"]
        if _dynamic_on(_one(block["for_each"]), object_lock=object_lock):
            statements += [_statement(s, env) for s in block["content"]]
    return {s["Sid"]: s for s in statements}


def _generated(role: Role, *, object_lock: bool) -> dict[str, dict[str, Any]]:
    doc = policy(role, bucket=B, prefix=PFX, server_id=SRV, kms_key_arn=KEY,
                 object_lock=object_lock)
    return {s["Sid"]: {**s, "Action": sorted(s["Action"])} for s in doc["Statement"]}


# ---------------------------------------------------------------------------------------------
# The role policies are the table's


@pytest.mark.parametrize("object_lock", [False, True], ids=["no-lock", "object-lock"])
@pytest.mark.parametrize("role", list(Role))
def test_role_policy_in_terraform_is_the_generated_one(role: Role, object_lock: bool) -> None:
    hcl = _hcl_policy(role, object_lock=object_lock)
    assert hcl == _generated(role, object_lock=object_lock)
    granted = {a for s in hcl.values() for a in s["Action"]}
    wanted = {c.action for c in calls_for(role, object_lock=object_lock)}
    wanted |= {a for c in calls_for(role, object_lock=object_lock) for a in c.kms}
    assert granted == wanted
    assert not any("*" in a for a in granted), "wildcard action"


@pytest.mark.parametrize("object_lock", [False, True], ids=["no-lock", "object-lock"])
@pytest.mark.parametrize("role", list(Role))
def test_role_policy_reaches_only_the_server_prefix(role: Role, object_lock: bool) -> None:
    sp = server_prefix(PFX, SRV)
    for s in _hcl_policy(role, object_lock=object_lock).values():
        if s["Resource"] == KEY:
            assert s["Condition"] == {"StringEquals": {"kms:ViaService": [
                f"s3.{REGION}.amazonaws.com"]}}
        elif s["Resource"] == f"arn:aws:s3:::{B}":
            assert s["Action"] == ["s3:ListBucket"]
            assert s["Condition"] == {"StringLike": {"s3:prefix": [sp + "*"]}}
        else:
            assert s["Resource"] == f"arn:aws:s3:::{B}/{sp}*", s


def test_shipper_deletes_only_without_object_lock() -> None:
    def actions(ol: bool) -> set[str]:
        return {a for s in _hcl_policy(Role.SHIPPER, object_lock=ol).values()
                for a in s["Action"]}

    assert "s3:DeleteObject" in actions(False)
    assert not {a for a in actions(True) if "Delete" in a}
    assert not {a for s in _hcl_policy(Role.STANDBY, object_lock=False).values()
                for a in s["Action"] if a.split(":")[1].startswith(("Put", "Delete", "Abort"))}


def test_each_role_policy_is_attached_to_its_role() -> None:
    attached = _named(SITE, "resource", "aws_iam_role_policy")
    for role in Role:
        body = attached[str(role)]
        assert _one(body["role"]) == f"${{aws_iam_role.{role}.id}}"
        assert _one(body["policy"]) == f"${{data.aws_iam_policy_document.{role}.json}}"
    roles = _named(SITE, "resource", "aws_iam_role")
    for role in Role:
        trust = _named(SITE, "data", "aws_iam_policy_document")[f"{role}_trust"]
        principals = trust["statement"][0]["principals"][0]
        assert _one(principals["identifiers"]) == f"${{var.{role}_trusted_arns}}"
        assert _one(roles[str(role)]["assume_role_policy"]) == (
            f"${{data.aws_iam_policy_document.{role}_trust.json}}")


# ---------------------------------------------------------------------------------------------
# The bucket and its key


def _bucket_resource(type_: str) -> dict[str, Any]:
    return _named(BUCKET, "resource", type_)["this"]


def test_bucket_encrypts_with_its_customer_key_and_a_bucket_key() -> None:
    rule = _bucket_resource("aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    default = rule["apply_server_side_encryption_by_default"][0]
    assert _one(default["sse_algorithm"]) == "aws:kms"
    assert _one(default["kms_master_key_id"]) == "${aws_kms_key.this.arn}"
    assert _one(rule["bucket_key_enabled"]) is True
    key = _bucket_resource("aws_kms_key")
    assert _one(key["enable_key_rotation"]) is True
    assert _one(key["policy"]) == "${data.aws_iam_policy_document.key.json}"


def test_bucket_is_versioned_and_never_public() -> None:
    versioning = _bucket_resource("aws_s3_bucket_versioning")
    assert _one(versioning["versioning_configuration"][0]["status"]) == "Enabled"
    pab = _bucket_resource("aws_s3_bucket_public_access_block")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                 "restrict_public_buckets"):
        assert _one(pab[flag]) is True, flag
    owner = _bucket_resource("aws_s3_bucket_ownership_controls")
    assert _one(owner["rule"][0]["object_ownership"]) == "BucketOwnerEnforced"


def test_object_lock_is_optional_with_mode_and_default_retention() -> None:
    assert _one(_bucket_resource("aws_s3_bucket")["object_lock_enabled"]) == (
        "${var.object_lock != None}")
    lock = _bucket_resource("aws_s3_bucket_object_lock_configuration")
    assert _one(lock["count"]) == "${var.object_lock == None ? 0 : 1}"
    retention = lock["rule"][0]["default_retention"][0]
    assert _one(retention["mode"]) == "${var.object_lock.mode}"
    assert _one(retention["days"]) == "${var.object_lock.retention_days}"


def _bucket_policy() -> dict[str, dict[str, Any]]:
    doc = _named(BUCKET, "data", "aws_iam_policy_document")["bucket"]
    env = {"aws_s3_bucket.this.arn": f"arn:aws:s3:::{B}", "aws_kms_key.this.arn": KEY}
    out = {}
    for s in doc["statement"]:
        st_ = _statement(s, env)
        st_["Principal"] = {_one(p["type"]): _one(p["identifiers"]) for p in s["principals"]}
        out[st_["Sid"]] = st_
    return out


def test_bucket_policy_allows_tls_only() -> None:
    pol = _bucket_policy()
    everything = [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"]
    assert pol["DenyInsecureTransport"] == {
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Action": ["s3:*"],
        "Resource": everything, "Principal": {"*": ["*"]},
        "Condition": {"Bool": {"aws:SecureTransport": ["false"]}}}
    assert pol["DenyOutdatedTLS"]["Condition"] == {
        "NumericLessThan": {"s3:TlsVersion": ["1.2"]}}
    assert pol["DenyOutdatedTLS"]["Resource"] == everything
    assert all(s["Effect"] == "Deny" for s in pol.values()), "a bucket policy that grants"


def test_bucket_policy_refuses_uploads_not_encrypted_with_the_key() -> None:
    pol = _bucket_policy()
    for sid in ("DenyOtherEncryption", "DenyOtherKmsKey", "DenyKmsWithoutKeyId"):
        assert pol[sid]["Action"] == ["s3:PutObject"]
        assert pol[sid]["Resource"] == f"arn:aws:s3:::{B}/*"
        assert pol[sid]["Principal"] == {"*": ["*"]}
    assert pol["DenyOtherEncryption"]["Condition"] == {
        "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": ["aws:kms"]}}
    assert pol["DenyOtherKmsKey"]["Condition"] == {
        "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": [KEY]}}
    assert pol["DenyKmsWithoutKeyId"]["Condition"] == {
        "StringEquals": {"s3:x-amz-server-side-encryption": ["aws:kms"]},
        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": ["true"]}}
    attached = _bucket_resource("aws_s3_bucket_policy")
    assert _one(attached["policy"]) == "${data.aws_iam_policy_document.bucket.json}"


def test_lifecycle_aborts_uploads_expires_old_versions_and_may_move_them_colder() -> None:
    rules = {_one(r["id"]): r for r in _bucket_resource(
        "aws_s3_bucket_lifecycle_configuration")["rule"]}
    abort = rules["abort-incomplete-multipart-uploads"]
    assert _one(abort["status"]) == "Enabled" and abort["filter"] == [{}]
    assert _one(abort["abort_incomplete_multipart_upload"][0]["days_after_initiation"]) == (
        "${var.lifecycle_rules.abort_incomplete_multipart_upload_days}")
    expire = rules["expire-noncurrent-versions"]
    assert _one(expire["status"]) == "Enabled" and expire["filter"] == [{}]
    assert _one(expire["noncurrent_version_expiration"][0]["noncurrent_days"]) == (
        "${var.lifecycle_rules.noncurrent_version_expiration_days}")
    colder = rules["move-old-objects-to-a-colder-class"]
    assert _norm(_one(colder["status"])) == _norm(
        'var.lifecycle_rules.transition_days == None ? "Disabled" : "Enabled"')
    assert _one(colder["transition"][0]["storage_class"]) == (
        "${var.lifecycle_rules.transition_storage_class}")
    # The site moves only its server's objects.
    call = _named(SITE, "module")["bucket"]
    assert _norm(_one(call["lifecycle_rules"])) == _norm(
        "merge(var.lifecycle_rules, {transition_prefix: local.server_prefix})")


def test_key_is_usable_only_by_the_roles_and_administered_by_the_admins() -> None:
    doc = _named(BUCKET, "data", "aws_iam_policy_document")["key"]
    (admin,) = doc["statement"]
    assert _one(admin["principals"][0]["identifiers"]) == "${var.kms_admin_arns}"
    admin_actions = _one(admin["actions"])
    assert not [a for a in admin_actions if "*" in a or a.split(":")[1].startswith(
        ("Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "CreateGrant"))]
    (dyn,) = doc["dynamic"]
    content = _one(dyn["statement"]["content"])
    assert _one(content["principals"][0]["identifiers"]) == "${statement.value.principals}"
    conditions = {_one(c["variable"]): _one(c["values"]) for c in content["condition"]}
    assert conditions == {"kms:ViaService": ["${local.s3_via_service}"],
                          "kms:CallerAccount": [
                              "${data.aws_caller_identity.current.account_id}"]}
    uses = _locals(BUCKET)["key_uses"]
    assert {k: v["principals"] for k, v in uses.items()} == {
        "WriteThroughS3": "${var.kms_users.write}", "ReadThroughS3": "${var.kms_users.read}",
        "ReplicateThroughS3": "${var.kms_users.replicate}"}
    assert {k: v["actions"] for k, v in uses.items()} == {
        "WriteThroughS3": ["kms:Decrypt", "kms:GenerateDataKey"],
        "ReadThroughS3": ["kms:Decrypt"],
        "ReplicateThroughS3": ["kms:Encrypt", "kms:GenerateDataKey"]}
    call = _named(SITE, "module")["bucket"]
    users = _one(call["kms_users"])
    assert set(users) == {"write", "read"}
    assert users["write"] == ["${aws_iam_role.shipper.arn}"]
    assert _norm(users["read"]) == _norm(
        "concat([aws_iam_role.standby.arn], aws_iam_role.replication[*].arn)")
    # The shipper's role policy asks exactly what the key policy lets the writers do.
    shipper_kms = _hcl_policy(Role.SHIPPER, object_lock=False)["SnapshotKey"]["Action"]
    assert shipper_kms == uses["WriteThroughS3"]["actions"]
    standby_kms = _hcl_policy(Role.STANDBY, object_lock=False)["SnapshotKey"]["Action"]
    assert standby_kms == uses["ReadThroughS3"]["actions"]


def test_replication_is_optional_and_covers_the_server_prefix() -> None:
    conf = _named(SITE, "resource", "aws_s3_bucket_replication_configuration")["this"]
    assert _norm(_one(conf["count"])) == _norm("var.replication_enabled ? 1 : 0")
    rule = conf["rule"][0]
    assert _one(rule["filter"][0]["prefix"]) == "${local.server_prefix}"
    assert _one(rule["destination"][0]["encryption_configuration"][0][
        "replica_kms_key_id"]) == "${var.replica.kms_key_arn}"
    doc = _named(SITE, "data", "aws_iam_policy_document")["replication"]
    actions = {a for s in doc["statement"] for a in _one(s["actions"])}
    assert not any("*" in a for a in actions)
    assert not {a for a in actions if a.startswith("s3:Delete") or a == "s3:PutObject"}


# ---------------------------------------------------------------------------------------------
# Outputs, variables, versions, formatting


def test_target_output_maps_one_to_one_onto_the_target_section() -> None:
    target = _locals(SITE)["target"]
    assert set(target) == TARGET_KEYS
    outputs = _named(SITE, "output")
    assert _one(outputs["target"]["value"]) == "${local.target}"
    rendering = _one(outputs["standby_toml"]["value"])
    assert _norm('for key, value in local.target : "${key} = ${jsonencode(value)}"') in _norm(
        rendering)
    assert "'[target]'" in rendering
    # jsonencode of each kind of value the section holds is TOML.
    sample = {"url": f"s3://{B}/{PFX}", "region": REGION, "kms_key_id": KEY,
              "object_lock": True, "storage_class": "STANDARD"}
    text = "[target]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(sample.items()))
    assert tomllib.loads(text) == {"target": sample}


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_variable_has_a_type_and_a_description(path: Path) -> None:
    for block in _parse(path).get("variable", []):
        for name, body in block.items():
            assert _one(body.get("type", [None])), f"{name} has no type"
            assert len(_one(body.get("description", [""]))) > 10, f"{name} has no description"
            for v in body.get("validation", []):
                assert _one(v["condition"]) and len(_one(v["error_message"])) > 10, name


def test_variables_are_validated() -> None:
    for folder in (SITE, BUCKET, ROOT / "examples" / "aws"):
        validated = [n for n, b in _named(folder, "variable").items() if b.get("validation")]
        assert len(validated) >= 5, (folder, validated)


@pytest.mark.parametrize("folder", [SITE, BUCKET, ROOT / "examples" / "aws"],
                         ids=lambda p: p.name)
def test_provider_versions_are_pinned(folder: Path) -> None:
    (tf,) = _parse(folder / "versions.tf")["terraform"]
    assert _one(tf["required_version"]) == ">= 1.5.7"
    aws = _one(_one(tf["required_providers"])["aws"])
    assert aws == {"source": "hashicorp/aws", "version": ">= 6.0"}


def fmt_problems(text: str) -> list[str]:
    """Where `text` differs from `terraform fmt` in what fmt changes within a line.

    As hclwrite's formatter: a line that opens more brackets than it closes indents the lines
    after it by two spaces (once, however many it opens), and a line that closes them returns;
    the `=` of consecutive one-line attributes (a line whose value opens a bracket it does not
    close, a blank line, a comment or a block ends the run) stands one space after the
    longest name; any other `=` has one space before it.
    """
    problems: list[str] = []
    indents: list[int] = []  # open brackets per indenting line, innermost last
    run: list[tuple[int, int, int]] = []  # (line number, name width, column of "=")

    def close_run() -> None:
        if run:
            width = max(w for _, w, _ in run)
            problems.extend(f"line {n}: '=' at column {col}, fmt puts it at {width + 1}"
                            for n, _, col in run if col != width + 1)
            run.clear()

    for n, line in enumerate(text.split("\n")[:-1], 1):
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)  # brackets in strings balance
        code = re.sub(r"\s*#.*$", "", code)
        if line != line.rstrip() or "\t" in line:
            problems.append(f"line {n}: trailing white space or a tab")
        if not code.strip():
            close_run()
            if line.strip() and len(line) - len(line.lstrip()) != 2 * len(indents):
                problems.append(f"line {n}: comment indented differently from its code")
            continue
        net = sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}")
        closed = -net
        while closed > 0 and indents:
            if closed >= indents[-1]:
                closed -= indents.pop()
            else:
                indents[-1] -= closed
                closed = 0
        want = 2 * len(indents)
        if net > 0:
            indents.append(net)
        if len(line) - len(line.lstrip()) != want:
            problems.append(f"line {n}: indented {len(line) - len(line.lstrip())}, not {want}")
        m = re.match(r"^(\s*[A-Za-z0-9_\"-]+)(\s*)=(?![=>])", code)
        if m and net == 0:
            run.append((n, len(m.group(1)), len(m.group(1)) + len(m.group(2))))
        else:
            close_run()
            if m and len(m.group(2)) != 1:
                problems.append(f"line {n}: one space before '=' in a multi-line value")
    close_run()
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append("the file must end with exactly one newline")
    return problems


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_tf_files_are_formatted_as_terraform_fmt_does(path: Path) -> None:
    assert fmt_problems(path.read_text()) == []


def test_fmt_check_finds_what_fmt_would_change() -> None:
    good = 'a {\n  x     = 1\n  y_long = 2\n}\n'
    assert fmt_problems(good) == ["line 2: '=' at column 8, fmt puts it at 9"]
    assert fmt_problems('a {\n  x      = 1\n  y_long = [\n    1,\n  ]\n}\n') == [
        "line 2: '=' at column 9, fmt puts it at 4"]
    assert fmt_problems('a {\n   x = 1\n}\n') == ["line 2: indented 3, not 2"]
    assert fmt_problems('a {\n  x = "{"\n}\n') == []
    assert fmt_problems('a {\n  t = f({\n    k = 1\n  })\n}\n') == []
    assert fmt_problems('a {\n  t = f({\n      k = 1\n  })\n}\n') == [
        "line 3: indented 6, not 4"]


# ---------------------------------------------------------------------------------------------
# checkov


def test_checkov_finds_nothing_that_is_not_skipped_with_a_reason() -> None:
    exe = Path(sys.executable).with_name("checkov")
    # --skip-download: checkov would fetch guideline links from its vendor otherwise.
    proc = subprocess.run([str(exe), "-d", str(ROOT), "--framework", "terraform",
                           "--skip-download", "-o", "json"],
                          capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    results, summary = report["results"], report["summary"]
    assert summary["parsing_errors"] == 0
    assert results["failed_checks"] == [], [
        (c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert proc.returncode == 0, proc.stderr[-2000:]
    for c in results["skipped_checks"]:
        reason = c["check_result"].get("suppress_comment") or ""
        assert len(reason) > 20, f"{c['check_id']} on {c['resource']} is skipped without a reason"
    passed = {c["check_id"] for c in results["passed_checks"]}
    # The checks this module exists to pass actually ran.
    assert {"CKV_AWS_145", "CKV2_AWS_6", "CKV_AWS_21", "CKV_AWS_300", "CKV2_AWS_61",
            "CKV_AWS_7", "CKV_AWS_33", "CKV2_AWS_64", "CKV_AWS_49", "CKV_AWS_60",
            "CKV_AWS_108", "CKV_AWS_110"} <= passed


# ---------------------------------------------------------------------------------------------
# The generator and `standby target iam-policy`

segment = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)


@given(role=st.sampled_from(list(Role)), object_lock=st.booleans(),
       prefix=st.lists(segment, max_size=3).map("/".join), server=segment,
       bucket=st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True),
       with_key=st.booleans())
def test_generated_policy_is_least_privilege(role: Role, object_lock: bool, prefix: str,
                                             server: str, bucket: str, with_key: bool) -> None:
    doc = policy(role, bucket=bucket, prefix=prefix, server_id=server,
                 kms_key_arn=KEY if with_key else None, object_lock=object_lock)
    sp = server_prefix(prefix, server)
    assert sp.endswith(f"{server}/") and "//" not in sp and not sp.startswith("/")
    calls = calls_for(role, object_lock=object_lock)
    granted = {a for s in doc["Statement"] for a in s["Action"]}
    wanted = {c.action for c in calls} | ({a for c in calls for a in c.kms} if with_key else set())
    assert granted == wanted and not any("*" in a for a in granted)
    for s in doc["Statement"]:
        assert s["Effect"] == "Allow"
        if s["Resource"].startswith("arn:aws:kms"):
            assert s["Resource"] == KEY
        elif "Condition" in s:
            assert s["Resource"] == f"arn:aws:s3:::{bucket}"
            assert s["Condition"]["StringLike"]["s3:prefix"] == [sp + "*"]
        else:
            assert s["Resource"] == f"arn:aws:s3:::{bucket}/{sp}*"
    if object_lock or role is Role.STANDBY:
        assert not {a for a in granted if "Delete" in a}
    if role is Role.STANDBY:
        assert granted <= {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}


def test_table_is_consistent() -> None:
    methods = [c.method for c in CALLS]
    assert len(methods) == len(set(methods))
    assert all(c.roles for c in CALLS)
    assert {c.scope for c in CALLS if c.action == "s3:ListBucket"} == {Scope.LISTING}
    assert all(c.roles == {Role.SHIPPER} for c in CALLS if c.deletes)


@pytest.mark.parametrize("bad", [
    {"server_id": "a/b"}, {"server_id": ""}, {"bucket": "Not_A_Bucket"},
    {"kms_key_arn": "alias/standby"}, {"kms_key_arn": "1234abcd-12ab-34cd-56ef-1234567890ab"},
])
def test_generator_refuses_what_cannot_be_a_policy(bad: dict[str, str]) -> None:
    args: dict[str, Any] = {"bucket": B, "prefix": PFX, "server_id": SRV, "kms_key_arn": KEY,
                            "object_lock": False, **bad}
    with pytest.raises(UsageError):
        policy(Role.SHIPPER, **args)


def test_cli_prints_the_generated_policy_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["target", "iam-policy", "--role", "shipper", "--bucket", B, "--prefix",
                        PFX, "--server-id", SRV, "--kms-key-id", KEY, "--object-lock", "--json"],
                       capsys)
    assert code == 0
    assert json.loads(out) == policy(Role.SHIPPER, bucket=B, prefix=PFX, server_id=SRV,
                                     kms_key_arn=KEY, object_lock=True)


def test_cli_says_the_policy_in_words(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "site", server_id=SRV)
    code, out, _ = run(["--config", str(cfg), "target", "iam-policy", "--role", "standby",
                        "--bucket", B, "--prefix", PFX], capsys)
    assert code == 0
    assert f"IAM policy for the standby of server {SRV} in s3://{B}/{PFX}/{SRV}/" in out
    assert f"on arn:aws:s3:::{B} when s3:prefix is like {PFX}/{SRV}/*" in out
    assert "S3 calls covered: list_objects_v2, head_object, get_object." in out
    assert "SSE-S3" in out
    assert not re.search(r"[{}]|None", out)


def test_cli_errors_name_what_is_wrong(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["target", "iam-policy", "--role", "shipper", "--bucket", B,
                        "--server-id", SRV, "--kms-key-id", "alias/x"], capsys)
    assert code == 2 and "not a KMS key ARN" in err
    code, _, err = run(["--config", str(tmp_path / "none.toml"), "target", "iam-policy",
                        "--role", "shipper", "--bucket", B], capsys)
    assert code == 2 and "--server-id" in err


# ---------------------------------------------------------------------------------------------
# The READMEs


def _fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_says_how_to_run_terraform() -> None:
    guide = (ROOT / "README.md").read_text()
    (commands,) = [b for b in _fenced(guide, "") if "terraform init" in b]
    assert [c for c in ("terraform init", "terraform validate", "terraform plan")
            if c not in commands] == []
    assert "terraform/README.md" in (ROOT.parent / "README.md").read_text()


def test_module_readme_example_uses_real_inputs_and_shows_the_target_section() -> None:
    readme = (SITE / "README.md").read_text()
    (usage,) = _fenced(readme, "hcl")
    call = hcl2.loads(usage)["module"][0]["standby_site"]
    inputs = set(_named(SITE, "variable"))
    assert {k for k in call if not k.startswith("__")} - {"source"} <= inputs
    required = {n for n, b in _named(SITE, "variable").items() if "default" not in b}
    assert required <= set(call)
    (toml,) = _fenced(readme, "toml")
    assert set(tomllib.loads(toml)["target"]) == TARGET_KEYS
