"""End to end on a real store under load: full backup, more load, incremental, more load; then
restore one account and all accounts on the running store; digests equal the primary's."""

from __future__ import annotations

import shutil
from pathlib import Path

from standby.classic import backup, blobpack, ldap, localconfig, restore
from standby.classic.env import Env
from standby.store.loadgen import run as loadgen
from standby.classic.target import account_relpath
from standby.store import schema
from tests.classic_util import digests, load_running, make_env

ACCOUNTS = 5


def _wreck(env: Env, email: str) -> None:
    """Damage one mailbox as a broken disk would: rows gone, blobs gone."""
    acct = env.site.directory.get(email)
    m = acct.mailbox_id
    conn = env.site.connect()
    cur = conn.cursor()
    g = schema.group_db(m, env.site.groups)
    cur.execute(f"DELETE FROM {g}.mail_item WHERE mailbox_id = %s AND type = 5 LIMIT 5", (m,))
    conn.commit()
    conn.close()
    shutil.rmtree(env.site.blobs.mailbox_dir(m) / "msg", ignore_errors=True)


def test_full_incremental_restore_one_and_all(make_store, tmp_path: Path) -> None:
    h = make_store("primary", sections={"redolog": {"rollover_size_kb": 128}})
    h.start()
    localconfig.edit(h.settings.state_dir, ["backup_archived_redolog_keep_time=3600"])
    env = make_env(h, tmp_path / "backup")
    first = loadgen(h.settings.store_socket, accounts=ACCOUNTS, ops=300, seed=11, workers=2)
    assert first.errors == 0, first.error_samples
    with load_running(h, accounts=ACCOUNTS, seed=12) as load:
        full = backup.run(env, backup.Request("full"))
    assert load.errors == 0, load.error_samples
    (fs,) = full.sessions
    assert fs.status == "completed" and fs.type == "full"
    assert [a.status for a in fs.accounts] == ["COMPLETED"] * ACCOUNTS
    with load_running(h, accounts=ACCOUNTS, seed=13):
        incr = backup.run(env, backup.Request("incr"))
    assert [s.type for s in incr.sessions] == ["incremental"]
    assert incr.sessions[0].redologs, "the incremental saved no redo logs"
    assert (env.target.redologs_dir / incr.sessions[0].redologs[0]).is_file()
    with load_running(h, accounts=ACCOUNTS, seed=14):
        pass
    total, before = digests(h)

    # One account, damaged, restored on the running store.
    victim = sorted(a.email for a in env.site.directory.accounts())[1]
    acct = env.site.directory.get(victim)
    _wreck(env, victim)
    assert digests(h)[1][acct.id] != before[acct.id]
    out = restore.run(env, restore.Request(accounts=(victim,)), online=True)
    assert out.restored == [victim] and not out.failed
    assert out.replay["ops"] > 0
    after_total, after = digests(h)
    assert after[acct.id] == before[acct.id]
    assert after_total == total

    # The store takes changes to it again (maintenance ended, its state reloaded).
    with h.client() as c:
        c.deliver(b"Subject: after restore\r\n\r\nhello\r\n", [victim])

    # All accounts.
    total, before = digests(h)
    for a in env.site.directory.accounts():
        _wreck(env, a.email)
    out = restore.run(env, restore.Request(accounts=None), online=True)
    assert sorted(out.restored) == sorted(a.email for a in env.site.directory.accounts())
    assert digests(h) == (total, before)

    # The whole server on a fresh store, as the guide's disaster recovery: the directory first
    # (zmrestoreldap), then zmrestoreoffline -sys -a all -c -br with the service stopped.
    last = backup.run(env, backup.Request("incr")).sessions[-1]
    total, before = digests(h)
    dr = make_store("dr")
    dr_env = make_env(dr, env.target.root)
    assert ldap.restore(dr_env.target, dr_env.site.directory, last.label) == ACCOUNTS
    out = restore.run(dr_env, restore.Request(accounts=None, sys=True, continue_on_error=True,
                                              backup_redo_only=True), online=False)
    assert len(out.restored) == ACCOUNTS and not out.failed and out.sys
    assert digests(dr) == (total, before)
    restored_lc = dr.settings.state_dir / "conf" / "localconfig.xml.restore"
    assert restored_lc.read_bytes() == localconfig.path(h.settings.state_dir).read_bytes()

    # The layout the guide describes.
    sess = env.target.session_dir(fs.label)
    assert (env.target.root / "accounts.xml").is_file()
    assert (sess / "session.xml").is_file() and (sess / "sys" / "ldap.xml").is_file()
    assert (sess / "sys" / "db" / "db_schema.xml").is_file()
    adir = sess / account_relpath(acct.id)
    for name in ("meta.xml", "ldap.xml", "db/db_schema.xml", "index/index.zip"):
        assert (adir / name).is_file(), name
    assert blobpack.read_manifest(adir / "blobs")

