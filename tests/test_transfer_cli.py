"""`standby ship` through the CLI against moto_server: the plan `--dry-run` prints (in words and
as JSON) and that it changes nothing; the JSON summary; one structured log event per object;
S3's server-side encryption (SSE-KMS with its key id) and storage class on every object, small
objects in one `put_object` and big ones as multipart uploads."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.test_transfer_support import cli, config_of, fill, make_rig

KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_ship_plans_then_ships_with_sse_kms_and_storage_class(
        tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    r = make_rig("s3", tmp_path, request,
                 sections={"target": {"kms_key_id": KMS, "storage_class": "STANDARD_IA"}})
    fill(r)
    r.write("db", "data/big.ibd", os.urandom(7 << 20))  # > one 5 MiB part
    m = r.take("set")
    c = ["-c", config_of(r.primary)]
    code, out, err = cli([*c, "ship", "--target", r.url, "--dry-run"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"ship to {r.url}:"
    for vol in ("db", "blob", "index", "redolog"):
        assert any(re.fullmatch(rf"  \d\. send {vol} +of {m.id} \[dir\] full, about "
                                r"[\d.]+ [KMG]?i?B", ln) for ln in lines), (vol, out)
    assert lines[-1].endswith(f"write the manifest of set {m.id}")
    # the plan changed nothing
    assert "Contents" not in r.s3.list_objects_v2(Bucket=r.bucket)
    assert not r.s3.list_multipart_uploads(Bucket=r.bucket).get("Uploads")
    code, out, _ = cli([*c, "ship", "--target", r.url, "--dry-run", "--json"], capsys)
    plan = json.loads(out)
    assert [(s["volume"], s["parent"]) for s in plan["steps"][:4]] == [
        (v, None) for v in ("db", "blob", "index", "redolog")]
    assert plan["steps"][0]["estimate_bytes"] > 7 << 20

    code, out, err = cli([*c, "--log-level", "info", "ship", "--target", r.url,
                          "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["manifests"] == [m.id]
    assert sorted(x["volume"] for x in summary["shipped"]) == ["blob", "db", "index",
                                                                "redolog"]
    events = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    shipped = [e["key"] for e in events if e.get("event") == "object_shipped"]
    listed = r.s3.list_objects_v2(Bucket=r.bucket)["Contents"]
    data = [o["Key"] for o in listed if o["Key"].split("/")[2] == "data"]
    assert sorted(shipped) == sorted(k.split("/", 2)[2] for k in data)  # one event each
    multipart = 0
    for o in listed:
        head = r.s3.head_object(Bucket=r.bucket, Key=o["Key"])
        assert head["ServerSideEncryption"] == "aws:kms", o["Key"]
        assert head["SSEKMSKeyId"] == KMS, o["Key"]
        assert head["StorageClass"] == "STANDARD_IA", o["Key"]
        multipart += head["ETag"].strip('"').count("-")  # a multipart ETag ends in -<parts>
    assert multipart == 1  # the db stream; everything else went up in one put_object
    code, out, _ = cli([*c, "ship", "--target", r.url], capsys)
    assert code == 0 and out.strip() == f"nothing to ship: {r.url} is up to date"
