"""The failover round trip on a real store, through an encrypted S3 target (moto_server):

a primary under load takes three sets with redolog snapshots between them, `standby ship`
runs after each (as cron does); at the standby `standby pull` brings the newest set and
redolog snapshot, whose volumes equal the primary's snapshots file by file and byte for byte;
`zmplayredo --set latest` then gives the digest of a replay, from empty, of the primary's log up
to the last shipped position (the pulled redolog volume, which is that log).
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from standby.catalog.manifest import Manifest
from standby.snapshot import sets
from standby.store.index import IndexStore
from standby.transfer import factory, ship
from standby.store.loadgen import run as loadgen
from tests.replay_util import digest, standby_cli, zmplayredo
from tests.services import MotoServer
from tests.test_snapshot_support import KEY
from tests.test_transfer_support import ENC_KEY, aws_env, tree


def test_pull_then_zmplayredo_set_latest_is_the_failover(make_store: Any, moto: MotoServer,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    aws_env(monkeypatch)
    bucket = f"sb-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1").create_bucket(
        Bucket=bucket)
    sid = str(uuid.uuid4())
    sections: dict[str, dict[str, object]] = {
        "snapshot": {"manifest_key": KEY, "stagger_s": 0.2},
        "redolog": {"rollover_size_kb": 256},
        "mariadb": {"log_file_size": "8M", "buffer_pool": "32M"},
        "target": {"url": f"s3://{bucket}/site", "endpoint_url": moto.url,
                   "region": "us-east-1", "encryption_key": ENC_KEY, "part_size_mb": 5}}
    primary = make_store("primary", sections=sections, server_id=sid)
    # The standby and the reference read the primary's directory (its accounts and their purge
    # lifetimes, which PurgeOldMessages applies and the redo log does not carry), as a standby
    # site reads the same LDAP.
    sections = {**sections, "store": {"directory": str(primary.settings.directory_path)}}
    standby = make_store("standby", sections=sections, server_id=sid)
    primary.start()
    stop = threading.Event()
    result: dict[str, Any] = {}

    def load() -> None:
        result["load"] = loadgen(primary.settings.store_socket, accounts=6, ops=10**6,
                                 seed=5, workers=2, stop=stop)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    taken: list[Manifest] = []
    try:
        for i, kind in enumerate(("set", "redolog", "set", "redolog", "set", "redolog")):
            time.sleep(1.0)
            taken.append(sets.take(kind, primary.settings).manifest)
            if i < 5:  # the library, as the command calls it; the last one as cron runs it
                ship.ship(primary.settings, factory.open_target(None, primary.settings))
            else:
                standby_cli(primary.cfg, "ship", "--json").assert_ok()
    finally:
        stop.set()
        t.join(120)
    assert result["load"].errors == 0, result["load"].error_samples
    primary.stop()
    last_set, last = taken[4], taken[5]

    standby_cli(standby.cfg, "verify").assert_ok()
    plan = standby_cli(standby.cfg, "pull", "--dry-run", "--json").assert_ok().summary
    assert (plan["set"], plan["redolog"]) == (last_set.id, last.id)
    assert [c["manifest"] for c in plan["chains"]["db"]] == [taken[0].id, taken[2].id,
                                                             taken[4].id]
    standby_cli(standby.cfg, "pull").assert_ok()
    for vol, m in (("db", last_set), ("blob", last_set), ("index", last_set),
                   ("redolog", last)):
        snap = m.snapshot(vol)
        assert snap is not None
        want = tree(Path(snap.ref))
        got = tree(getattr(standby.settings.volumes, vol).path)
        assert got.keys() == want.keys(), vol
        assert [k for k in want if got[k] != want[k]] == [], vol

    zmplayredo(standby.cfg, "--set", "latest", "--json").assert_ok()
    reference = make_store("reference", sections=sections, server_id=sid)
    standby_cli(reference.cfg, "replay", "--log-dir",
                str(standby.settings.volumes.redolog.path), "--json").assert_ok()
    got, want = digest(standby), digest(reference)
    differ = [m.mailbox_id for m in got.mailboxes if m not in want.mailboxes]
    assert got.equal(want) == {"db": True, "blob": True, "index": True, "all": True}, (
        got.equal(want), [index_rows_differing(standby, reference, m) for m in differ])


def index_rows_differing(a: Any, b: Any, m: int) -> dict[str, Any]:
    """Mailbox m's index rows (hwm, folders, documents) that only one of two stores has."""
    rows = []
    for h in (a, b):
        index = IndexStore(Path(h.settings.volumes.index.path))
        try:
            with index.use(m, create=False) as idx:
                rows.append({("hwm", idx.hwm)} | {("folder", *r) for r in idx.iter_folders()}
                            | {("doc", *r) for r in idx.iter_docs()} if idx else set())
        finally:
            index.close()
    return {"mailbox": m, "only_a": sorted(rows[0] - rows[1], key=str)[:8],
            "only_b": sorted(rows[1] - rows[0], key=str)[:8]}
