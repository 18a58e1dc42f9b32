"""Backups in a bucket (`-t s3://bucket/prefix`, moto_server): sessions sent through the
transfer package's object store, encrypted; the local copy can be lost — queries and restores
work from the bucket alone; a damaged object is refused; `-del` removes the bucket's sessions."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from standby.classic import backup, remote, restore
from standby.classic import env as env_mod
from standby.classic.env import Env
from standby.errors import IntegrityError
from standby.transfer import codec
from standby.store.loadgen import run as loadgen
from standby.store.site import Site
from tests.classic_util import Outbox, digests, load_running
from tests.services import MotoServer
from tests.test_classic_e2e import _wreck
from tests.test_transfer_support import ENC_KEY, aws_env

BIN = Path(sys.executable).parent
ACCOUNTS = 4


def _env(h: Any, url: str, s3: Any) -> Env:
    return env_mod.build(Site.open(h.settings), target=url, mailer=Outbox(), s3=lambda: s3)


def _bucket_and_store(make_store: Any, moto: MotoServer, monkeypatch: pytest.MonkeyPatch,
                      redolog: dict[str, Any]) -> tuple[Any, Any, str, str, Env]:
    """A new bucket, a running store whose [target] is that bucket (encrypted), and an Env
    backing up into it: (store, client, bucket, URL, env)."""
    aws_env(monkeypatch)
    bucket = f"sb-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    h = make_store("primary", sections={
        "redolog": redolog,
        "target": {"endpoint_url": moto.url, "region": "us-east-1",
                   "encryption_key": ENC_KEY, "part_size_mb": 5}})
    h.start()
    url = f"s3://{bucket}/backups"
    env = _env(h, url, s3)
    assert env.remote is not None
    return h, s3, bucket, url, env


def _keys(s3: Any, bucket: str) -> dict[str, bytes]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def test_backups_in_a_bucket(make_store: Any, moto: MotoServer, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    h, s3, bucket, url, env = _bucket_and_store(make_store, moto, monkeypatch,
                                                {"rollover_size_kb": 128})
    first = loadgen(h.settings.store_socket, accounts=ACCOUNTS, ops=200, seed=21, workers=2)
    assert first.errors == 0, first.error_samples
    with load_running(h, accounts=ACCOUNTS, seed=22):
        (full,) = backup.run(env, backup.Request("full")).sessions
    with load_running(h, accounts=ACCOUNTS, seed=23):
        incr = backup.run(env, backup.Request("incr")).sessions[-1]
    assert full.status == "completed" and incr.status == "completed" and incr.redologs

    # What the bucket holds: each session whole, its record last; redo logs; accounts.xml;
    # nothing readable without the key (the addresses appear in no object's bytes).
    objects = _keys(s3, bucket)
    for label in (full.label, incr.label):
        names = {k.rsplit("/", 1)[-1] for k in objects if f"/sessions/{label}/" in k}
        assert names == {"index.json.sbx", "data.tar.sbx", "sums.json.sbx",
                         "session.xml.sbx"}, names
    assert any(k.endswith(f"/classic/redologs/{incr.redologs[0]}.sbx") for k in objects)
    assert any(k.endswith("/classic/accounts.xml.sbx") for k in objects)
    emails = [a.email for a in env.site.directory.accounts()]
    assert len(emails) == ACCOUNTS
    assert not any(e.encode() in data for e in emails for data in objects.values())
    total, before = digests(h)

    # The local copy is lost: zmbackupquery lists the sessions from the bucket alone.
    cache = env.target.root
    shutil.rmtree(cache)
    q = subprocess.run([str(BIN / "zmbackupquery"), "-t", url, "-c", str(h.cfg)],
                       capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr
    assert full.label in q.stdout and incr.label in q.stdout, q.stdout
    assert (cache / "sessions" / full.label / remote.STUB).exists()  # a record, no data yet

    # One account wrecked and restored on the running store from the bucket: the full
    # session's data fetched, the incremental's logs replayed; the store as it was.
    victim = sorted(emails)[0]
    acct = env.site.directory.get(victim)
    _wreck(env, victim)
    assert digests(h)[1][acct.id] != before[acct.id]
    env2 = _env(h, url, s3)
    out = restore.run(env2, restore.Request(accounts=(victim,)), online=True)
    assert out.restored == [victim] and not out.failed
    assert digests(h) == (total, before)
    assert not (cache / "sessions" / full.label / remote.STUB).exists()

    # A damaged object is refused, and the session's stub stays a stub.
    shutil.rmtree(cache)
    data_key = next(k for k in objects if k.endswith(f"/sessions/{full.label}/data.tar.sbx"))
    bad = bytearray(objects[data_key])
    bad[len(bad) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=data_key, Body=bytes(bad))
    env3 = _env(h, url, s3)
    with pytest.raises(IntegrityError):
        restore.run(env3, restore.Request(accounts=(victim,)), online=True)
    assert (cache / "sessions" / full.label / remote.STUB).exists()
    assert not list((cache / "sessions_tmp").glob(".fetch-*"))

    # zmbackup -del LABEL: that session and every one before it leave the bucket too.
    d = subprocess.run([str(BIN / "zmbackup"), "-del", incr.label, "-t", url,
                        "-c", str(h.cfg)], capture_output=True, text=True, timeout=300)
    assert d.returncode == 0, d.stderr
    left = _keys(s3, bucket)
    assert not any("/sessions/" in k for k in left), sorted(left)


def test_a_zfs_url_is_not_a_backup_target(make_store: Any, tmp_path: Path) -> None:
    h = make_store("primary")
    r = subprocess.run([str(BIN / "zmbackup"), "-f", "-a", "all", "-t", "zfs://tank/backup",
                        "-c", str(h.cfg)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "zfs and btrfs targets receive snapshots" in r.stderr
    assert not (h.settings.state_dir / "backup-cache").exists()


def test_a_second_full_sends_no_unchanged_container_again(
        make_store: Any, moto: MotoServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two full backups of unchanged data into a bucket: the second session's stream carries
    none of its blob containers (each is a link to the first's, named in its sums); with the
    first session deleted (-del) and the local copy lost, the second still restores — the
    first's data stays in the bucket while linked, and leaves with the last session linking
    to it."""
    h, s3, bucket, url, env = _bucket_and_store(make_store, moto, monkeypatch, {})
    r = loadgen(h.settings.store_socket, accounts=ACCOUNTS, ops=150, seed=31, workers=2)
    assert r.errors == 0, r.error_samples
    (first,) = backup.run(env, backup.Request("full")).sessions
    (second,) = backup.run(env, backup.Request("full")).sessions
    assert second.stats["blobBytesWritten"] == 0 and second.stats["blobBytesLinked"] > 0

    def members(label: str) -> tuple[dict[str, Any], list[str]]:
        objects = _keys(s3, bucket)
        key = env.remote.key if env.remote is not None else None

        def plain(name: str) -> bytes:
            k = next(k for k in objects if k.endswith(f"/sessions/{label}/{name}.sbx"))
            return codec.decode(objects[k], key=key, encrypted=True, what=k)

        with tarfile.open(fileobj=io.BytesIO(plain(remote.DATA))) as tar:
            names = tar.getnames()
        return json.loads(plain(remote.SUMS)), names

    containers = sorted(str(p.relative_to(env.target.session_dir(second.label)))
                        for p in env.target.session_dir(second.label).rglob("*.zip")
                        if "blobs" in p.parts)
    assert containers
    sums1, sent1 = members(first.label)
    sums2, sent2 = members(second.label)
    assert remote.LINKS not in sums1 and set(containers) <= set(sent1)
    assert not set(containers) & set(sent2)  # no container sent again
    assert sorted(sums2[remote.LINKS]) == containers
    assert all(origin[0] == first.label for origin in sums2[remote.LINKS].values())

    # -del the first session: its record leaves the bucket, its data stays (linked to).
    d = subprocess.run([str(BIN / "zmbackup"), "-del", first.label, "-t", url,
                        "-c", str(h.cfg)], capture_output=True, text=True, timeout=300)
    assert d.returncode == 0, d.stderr
    left = _keys(s3, bucket)
    assert not any(f"/sessions/{first.label}/session.xml" in k for k in left)
    assert any(f"/sessions/{first.label}/data.tar" in k for k in left)

    # The local copy lost, one account wrecked and restored from the second session alone.
    total, before = digests(h)
    shutil.rmtree(env.target.root)
    victim = sorted(a.email for a in env.site.directory.accounts())[0]
    _wreck(env, victim)
    env2 = _env(h, url, s3)
    out = restore.run(env2, restore.Request(accounts=(victim,), full_only=True), online=True)
    assert out.restored == [victim] and not out.failed
    assert digests(h) == (total, before)

    # The last session deleted: nothing links to the first's data any more, and all leave.
    d = subprocess.run([str(BIN / "zmbackup"), "-del", second.label, "-t", url,
                        "-c", str(h.cfg)], capture_output=True, text=True, timeout=300)
    assert d.returncode == 0, d.stderr
    assert not any("/sessions/" in k for k in _keys(s3, bucket))
