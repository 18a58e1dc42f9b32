"""Point-in-time restores (-restoreToTime, -restoreToIncrLabel, -restoreToRedoSeq) give exactly
the state a replay of the log cut at the same point gives (Hypothesis over cut points)."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standby.classic import backup, redo, restore
from standby.classic.target import account_relpath
from standby.classic.xmlfiles import meta_from_xml, read_xml
from standby.replay import fast
from standby.replay.player import Player, Selection
from standby.replay.worker import WorkerConfig
from standby.store import schema
from standby.store.blobs import BlobStore
from standby.store.digest import mailbox_digest
from standby.store.index import IndexStore
from standby.store.loadgen import run as loadgen
from standby.store.site import Site
from tests.classic_util import make_env
from tests.conftest import StoreHandle


def _load(h: StoreHandle, ops: int, seed: int) -> None:
    r = loadgen(h.settings.store_socket, accounts=4, ops=ops, seed=seed, workers=4)
    assert r.errors == 0, r.error_samples


def _wipe(site: Site, m: int) -> None:
    conn = site.connect()
    cur = conn.cursor()
    g = schema.group_db(m, site.groups)
    for t in ("tagged_item", "tag", "tombstone", "revision", "mail_item"):
        cur.execute(f"DELETE FROM {g}.{t} WHERE mailbox_id = %s", (m,))
    cur.execute("DELETE FROM zimbra.mailbox WHERE id = %s", (m,))
    cur.execute("DELETE FROM zimbra.deleted_account WHERE mailbox_id = %s", (m,))
    conn.commit()
    conn.close()
    shutil.rmtree(site.blobs.mailbox_dir(m), ignore_errors=True)
    site.index.drop(m)


def _digest(site: Site, m: int) -> str:
    conn = site.connect()
    index = IndexStore(site.settings.volumes.index.path)
    try:
        return mailbox_digest(conn, m, groups=site.groups, blobs=BlobStore(
            site.settings.volumes.blob.path), index=index).digest
    finally:
        index.close()
        conn.close()


def test_point_in_time_restores_equal_a_cut_replay(make_store, tmp_path: Path) -> None:
    h = make_store("primary", sections={"redolog": {"rollover_size_kb": 512}})
    h.start()
    env = make_env(h, tmp_path / "backup")
    _load(h, 150, 1)
    f1 = backup.run(env, backup.Request("full")).sessions[0]
    _load(h, 100, 2)
    i1 = backup.run(env, backup.Request("incr")).sessions[-1]
    _load(h, 100, 3)
    backup.run(env, backup.Request("full"))
    _load(h, 100, 4)
    i2 = backup.run(env, backup.Request("incr")).sessions[-1]
    _load(h, 80, 5)  # these stay in the server's archive and current log

    acct = sorted(env.site.directory.accounts(), key=lambda a: a.email)[0]
    m = acct.mailbox_id
    assert m is not None
    meta = meta_from_xml(read_xml(env.target.session_dir(f1.label) / account_relpath(acct.id)
                                  / "meta.xml", root="accountBackup"))
    found = redo.gather([env.target.redologs_dir], env.redolog_dir)
    seqs = sorted(found)
    assert seqs == list(range(seqs[0], seqs[-1] + 1)) and len(seqs) >= 5
    logs = redo.log_files(found, seqs)
    times = [rec.tstamp for rec, _ in Player(Selection(mailbox_ids=frozenset({m}))).play(logs)
             if rec.tstamp >= meta.start_ms]
    assert len(times) > 20

    # The reference reads the primary's directory: PurgeOldMessages applies the accounts'
    # lifetimes, which the redo log does not carry.
    ref = make_store("reference",
                     sections={"store": {"directory": str(h.settings.directory_path)}})
    ref_site = Site.open(ref.settings)
    ref_site.db.start()
    ref_site.ensure_schema()
    s = ref.settings
    cfg = WorkerConfig(str(s.mariadb_socket), s.store.mailbox_groups, str(s.volumes.blob.path),
                       str(s.volumes.index.path), s.store.compress_blobs,
                       s.store.compression_threshold, retention=ref_site.directory.retention())
    cuts = st.one_of(
        st.tuples(st.just("time"), st.sampled_from(times), st.sampled_from([-1, 0, 1])),
        st.tuples(st.just("seq"), st.sampled_from([q for q in seqs if q >= meta.redo_seq]),
                  st.just(0)),
        st.tuples(st.just("incr"), st.sampled_from([i1.label, i2.label]), st.just(0)))
    incr_max = {i1.label: i1.max_redo_seq, i2.label: i2.max_redo_seq}

    @settings(max_examples=9, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(cuts)
    def check(cut: tuple[str, int | str, int]) -> None:
        kind, point, nudge = cut
        only = frozenset({m})
        if isinstance(point, str):  # an incremental's label
            req = restore.Request(accounts=(acct.email,), to_incr_label=point)
            sel, upto = Selection(mailbox_ids=only), incr_max[point]
        elif kind == "time":
            req = restore.Request(accounts=(acct.email,), to_time=point + nudge)
            sel, upto = Selection(to_time=point + nudge, mailbox_ids=only), None
        else:
            req = restore.Request(accounts=(acct.email,), to_redo_seq=point)
            sel, upto = Selection(mailbox_ids=only), point
        out = restore.run(env, req, online=True)
        assert out.restored == [acct.email], out.failed
        _wipe(ref_site, m)
        cut_logs = [lf for lf in logs if upto is None or lf.seq <= upto]
        res = fast.replay(cut_logs, sel, cfg=cfg, workers=1)
        assert not res.errors, res.errors[:3]
        assert _digest(env.site, m) == _digest(ref_site, m), cut

    try:
        check()
    finally:
        ref_site.db.stop()
