"""Phase two of a failover, the index catch-up, and search on an index that is behind.

One synthetic log (a few thousand ops of loadgen's mix over a few mailboxes) is replayed once
with `--index now` (the reference: one phase) and once with the default `--index defer` (the
template standby, db and blob forward, documents pending); each test works on a copy of the
template.

- The phases: right after the deferred replay db and blob equal the reference and the index
  does not; after `standby index catch-up` everything does, and a second catch-up finds nothing.
- Crash-safe and idempotent: `standby index catch-up` SIGKILLed (with its workers) at random
  moments after it started writing, then run to the end, leaves the index equal to the
  reference; in-process, a failure in the middle of a batch loses that batch only.
- Search on a behind mailbox (through the store service, its background catch-up kept from
  starting): told not to wait it answers flagged incomplete, with ids the complete answer also
  has; waiting it catches that mailbox up first and answers exactly as the reference store does.
  Every answer is either complete and equal to the reference's or says it is incomplete, also
  while the store's background catch-up is running (searched over and over meanwhile).
- The store service started on a behind index catches it up in the background (its catch-up
  process at nice 19) and `index_status` says so; mail is served meanwhile.
- A blob missing at catch-up: exit 1 naming the item, the mailbox stays behind; a replay that is
  running or was interrupted: the catch-up refuses (exit 5).
- `standby store digest` per volume: a change on one volume changes that volume's digest only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from standby.bench.synth import write_log
from standby.store import control
from standby.store.blobs import BlobStore
from standby.store.digest import StoreDigest, digest_settings
from standby.store.index import CATCHUP_MARKER, IndexStore, catch_up_mailbox
from standby.store.mime import message_fields
from standby.store.schema import group_of
from standby.store.site import Site
from tests.conftest import StoreHandle
from tests.replay_util import (
    STANDBY,
    Lab,
    digest,
    kill_group,
    property_settings,
    standby_cli,
    zmplayredo,
)
from tests.services import write_config

pytestmark = pytest.mark.services


@dataclass
class Deferred:
    log: Path
    reference: StoreDigest  # one-phase replay
    template: Path  # volumes of the deferred replay (store stopped)
    server_id: str
    pending: int
    ref_index: Path  # the reference store's index volume


@pytest.fixture(scope="module")
def deferred(tmp_path_factory: pytest.TempPathFactory, mariadb_available: None
             ) -> Iterator[Deferred]:
    root = tmp_path_factory.mktemp("catchup")
    log = root / "log"
    write_log(log, ops=3000, accounts=6, seed=21, rollover_mb=1)
    stores = []
    try:
        ref = StoreHandle(root / "ref", write_config(root / "ref"))
        stores.append(ref)
        zmplayredo(ref.cfg, "--log-dir", log, "--index", "now").assert_ok()
        want = digest_settings(ref.settings)
        assert sum(m.docs for m in want.mailboxes) > 300
        tpl = StoreHandle(root / "tpl", write_config(root / "tpl"))
        stores.append(tpl)
        s = zmplayredo(tpl.cfg, "--json", "--log-dir", log).assert_ok().summary
        pending = s["phases"]["index"]["documents_pending"]
        yield Deferred(log, want, tpl.root, tpl.settings.server_id, pending,
                       Path(ref.settings.volumes.index.path))
    finally:
        for h in stores:
            control.stop(h.settings, timeout=30)


def _clone(lab: Lab, d: Deferred, name: str) -> Any:
    """A copy of the deferred standby (the same server id), stopped."""
    h = lab.store(name, server_id=d.server_id)
    for vol in ("db", "blob", "index"):
        shutil.copytree(d.template / vol, getattr(h.settings.volumes, vol).path,
                        dirs_exist_ok=True)
    (Path(h.settings.volumes.db.path) / "data" / "standby-owner.pid").unlink(missing_ok=True)
    return h


def _pending(h: Any) -> dict[int, int]:
    index = IndexStore(Path(h.settings.volumes.index.path))
    try:
        return index.pending_counts()
    finally:
        index.close()


def test_phases_db_and_blob_first_index_after_catch_up(make_store, deferred: Deferred) -> None:
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "phases")
        before = digest(t, catch_up=False)
        eq = before.equal(deferred.reference)
        assert eq["db"] and eq["blob"] and not eq["index"], eq
        assert sum(m.pending for m in before.mailboxes) == deferred.pending > 0
        status = standby_cli(t.cfg, "index", "status", "--json").assert_ok().summary
        assert status["documents_pending"] == deferred.pending and status["marker"]
        first = standby_cli(t.cfg, "index", "catch-up", "--json").assert_ok().summary
        assert first["documents"] == deferred.pending and first["complete"], first
        assert first["marker_cleared"]
        assert not (Path(t.settings.volumes.index.path) / CATCHUP_MARKER).exists()
        after = digest(t, catch_up=False)
        assert after.equal(deferred.reference)["all"], after.equal(deferred.reference)
        again = standby_cli(t.cfg, "index", "catch-up").assert_ok()
        assert "nothing to catch up" in again.out
        assert digest(t, catch_up=False).total == after.total


def test_catch_up_killed_at_random_moments_then_rerun_ends_equal(make_store,
                                                                 deferred: Deferred) -> None:
    interrupted: list[int] = []  # documents still pending right after each kill mid-way

    @property_settings(3)
    @given(kills=st.lists(st.floats(0.0, 0.25), min_size=1, max_size=3),
           workers=st.sampled_from([1, 2]))
    def prop(kills: list[float], workers: int) -> None:
        with Lab(make_store) as lab:
            t = _clone(lab, deferred, "killed")
            total = sum(_pending(t).values())
            for delay in kills:
                proc = subprocess.Popen(
                    [str(STANDBY), "--config", str(t.cfg), "index", "catch-up",
                     "--batch-docs", "5", "--workers", str(workers)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL, start_new_session=True)
                try:
                    left = total
                    deadline = time.monotonic() + 120
                    while proc.poll() is None and left >= total:  # until it has written
                        assert time.monotonic() < deadline, "the catch-up never wrote"
                        time.sleep(0.01)
                        left = sum(_pending(t).values())
                    time.sleep(delay)
                finally:
                    members = kill_group(proc)
                left = sum(_pending(t).values())
                if proc.returncode != 0 and 0 < left < total:
                    interrupted.append(left)
                    assert len(members) >= 2, members  # the command and its workers
                total = left
                if not left:
                    break
            standby_cli(t.cfg, "index", "catch-up").assert_ok()
            assert not _pending(t)
            got = digest(t, catch_up=False)
            assert got.equal(deferred.reference)["all"], got.equal(deferred.reference)

    prop()
    assert interrupted, "no kill landed while the catch-up was half-way"


class _Crash(Exception):
    pass


@property_settings(6)
@given(fail_at=st.integers(0, 400), batch=st.sampled_from([1, 7, 50, 200]))
def test_failure_mid_batch_loses_only_that_batch(tmp_path_factory: pytest.TempPathFactory,
                                                 deferred: Deferred, fail_at: int,
                                                 batch: int) -> None:
    """In-process: parsing fails at the `fail_at`-th document (a kill mid-batch, as SQLite sees
    it); every committed batch is complete, nothing half-written, and a re-run finishes to the
    same documents as an uninterrupted catch-up."""
    work = tmp_path_factory.mktemp("midbatch")
    for vol in ("blob", "index"):
        shutil.copytree(deferred.template / vol, work / vol)
    blobs = BlobStore(work / "blob")
    index = IndexStore(work / "index")
    m = max(index.pending_counts().items(), key=lambda kv: kv[1])[0]
    seen = [0]

    def parse(data: bytes) -> Any:
        seen[0] += 1
        if seen[0] > fail_at:
            raise _Crash
        return message_fields(data)

    with index.use(m, create=False) as idx:
        assert idx is not None
        total = idx.pending_count()
        try:
            catch_up_mailbox(idx, blobs, m, batch=batch, parse=parse)
            crashed = False
        except _Crash:
            crashed = True
        done = total - idx.pending_count()
        assert not idx.db.in_transaction
        both = idx.db.execute("SELECT count(*) FROM pending p JOIN docs d ON d.rowid = p.id"
                              ).fetchone()[0]
        assert both == 0, "an item both indexed and pending"
        if crashed:
            assert done < total and done % batch == 0, (done, total, batch)  # whole batches
        again = catch_up_mailbox(idx, blobs, m, batch=batch)
        assert idx.pending_count() == 0 and again.documents == total - done
        assert catch_up_mailbox(idx, blobs, m).documents == 0
        got = list(idx.iter_docs())
    index.close()
    ref = IndexStore(deferred.ref_index)
    with ref.use(m, create=False) as want:
        assert want is not None
        assert list(want.iter_docs()) == got, "not the one-phase replay's documents"
    ref.close()


def test_search_on_a_behind_mailbox_waits_or_says_incomplete(make_store,
                                                             deferred: Deferred) -> None:
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "search")
        # Keep the service's background catch-up from starting: this test drives the mailbox.
        (Path(t.settings.volumes.index.path) / CATCHUP_MARKER).unlink()
        behind = _pending(t)
        m = max(behind, key=lambda k: behind[k])
        words = _words(t, m)
        assert words
        ref_answers = _reference_answers(deferred, m, words)
        t.start()
        partial_seen = 0
        with t.client() as c:
            status = c.call("index_status")
            assert status["catchup"] == "not needed" and status["documents_pending"] > 0
            for q in words:
                r = c.call("search", mailbox_id=m, query=q, limit=10_000, wait=False)
                assert r["complete"] is False and r["pending"] == behind[m], r
                assert set(r["ids"]) <= set(ref_answers[q]), q
                partial_seen += set(r["ids"]) != set(ref_answers[q])
            assert partial_seen, "the incomplete index answered every query in full"
            other = next(x for x in behind if x != m)
            for q in words:  # wait: caught up first, then the reference's answer
                r = c.call("search", mailbox_id=m, query=q, limit=10_000)
                assert r["complete"] is True and r["pending"] == 0, r
                assert sorted(r["ids"]) == sorted(ref_answers[q]), q
            again = c.call("search", mailbox_id=other, query=words[0], limit=10, wait=False)
            assert again["complete"] is False, "another mailbox is still behind"
            after = c.call("index_status")
            assert str(m) not in after["behind"] and str(other) in after["behind"]
        t.stop()


def _words(t: Any, m: int) -> list[str]:
    """Words from the subjects of messages whose documents are pending in mailbox `m`."""
    blobs = BlobStore(Path(t.settings.volumes.blob.path))
    index = IndexStore(Path(t.settings.volumes.index.path))
    words: list[str] = []
    with index.use(m, create=False) as idx:
        assert idx is not None
        for iid, _typ, _f, mc, text in idx.pending_batch(0, 200):
            if text is None:
                subject = message_fields(blobs.read(blobs.path(m, iid, mc))).subject
                words += [w for w in subject.split() if w.isalpha() and len(w) > 3]
    index.close()
    return sorted(set(words))[:12]


def _reference_answers(d: Deferred, m: int, words: list[str]) -> dict[str, list[int]]:
    index = IndexStore(d.ref_index)
    try:
        with index.use(m, create=False) as idx:
            assert idx is not None
            return {q: idx.search(q, 10_000) for q in words}
    finally:
        index.close()


def test_store_start_catches_up_in_the_background(make_store, deferred: Deferred) -> None:
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "background")
        t.start()
        seen_nice: list[int] = []
        with t.client() as c:
            m = min(_pending(t) or {0: 0})
            assert c.call("items", mailbox_id=m, limit=5), "mail is served meanwhile"
            deadline = time.monotonic() + 180
            while True:
                st_ = c.call("index_status")
                seen_nice += _catchup_nice(t)
                if st_["catchup"] != "running" and not st_["documents_pending"]:
                    break
                assert time.monotonic() < deadline, st_
                time.sleep(0.05)
            assert st_["catchup"] == "done", st_
        t.stop()
        assert digest(t, catch_up=False).equal(deferred.reference)["all"]
        assert not (Path(t.settings.volumes.index.path) / CATCHUP_MARKER).exists()
        assert all(n == 19 for n in seen_nice), seen_nice


def test_search_during_the_background_catch_up_is_complete_or_flagged(
        make_store, deferred: Deferred) -> None:
    """While the store's own catch-up runs, searches without waiting and with waiting, over
    and over: every answer is either flagged incomplete (its ids a subset of the complete
    answer) or complete and exactly the reference's; none is partial and unflagged."""
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "during")
        behind = _pending(t)
        boxes = sorted(behind, key=lambda k: -behind[k])[:3]
        words = {m: _words(t, m)[:4] for m in boxes}
        ref = {m: _reference_answers(deferred, m, words[m]) for m in boxes}
        t.start()
        answers = {"incomplete": 0, "complete": 0, "while_running": 0}
        with t.client() as c:
            deadline = time.monotonic() + 240
            for rounds in range(10_000):
                status = c.call("index_status")
                running = status["catchup"] == "running"
                for m in boxes:
                    for q in words[m]:
                        # wait=False mostly; every fifth round one mailbox is caught up first
                        wait = rounds % 5 == 4 and m == boxes[-1]
                        r = c.call("search", mailbox_id=m, query=q, limit=10_000, wait=wait)
                        if r["complete"]:
                            assert r["pending"] == 0, r
                            assert sorted(r["ids"]) == sorted(ref[m][q]), (m, q, r)
                            answers["complete"] += 1
                        else:
                            assert not wait and r["pending"] > 0, r
                            assert set(r["ids"]) <= set(ref[m][q]), (m, q, r)
                            answers["incomplete"] += 1
                        answers["while_running"] += running
                if not running and not status["documents_pending"]:
                    break
                assert time.monotonic() < deadline, status
        t.stop()
        assert answers["while_running"] and answers["incomplete"], answers
        assert digest(t, catch_up=False).equal(deferred.reference)["all"]


def _catchup_nice(t: Any) -> list[int]:
    """Nice values of the running catch-up processes of this store (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        if cmd[0] != b"nice" and b"standby.replay.catchup" in cmd and str(t.cfg).encode() in cmd:
            out.append(int(stat.rsplit(")", 1)[1].split()[16]))
    return out


def test_missing_blob_is_reported_and_the_mailbox_stays_behind(make_store,
                                                               deferred: Deferred) -> None:
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "missing")
        behind = _pending(t)
        m = min(behind)
        index = IndexStore(Path(t.settings.volumes.index.path))
        with index.use(m, create=False) as idx:
            assert idx is not None
            iid, _typ, _f, mc, _text = next(r for r in idx.pending_batch(0, 10_000)
                                            if r[4] is None)
        index.close()
        blobs = BlobStore(Path(t.settings.volumes.blob.path))
        blobs.path(m, iid, mc).unlink()
        r = standby_cli(t.cfg, "index", "catch-up")
        assert r.rc == 1, r.describe()
        r.assert_no_traceback()
        assert f"mailbox {m} item {iid}: blob missing" in r.out, r.out
        assert _pending(t) == {m: 1}
        status = standby_cli(t.cfg, "index", "status").assert_ok()
        assert "1 documents pending in 1 mailboxes" in status.out
        assert (Path(t.settings.volumes.index.path) / CATCHUP_MARKER).exists()


def test_an_index_that_cannot_be_read_is_named_and_the_volume_stays_behind(
        make_store, deferred: Deferred) -> None:
    """The workers count what each mailbox still lacks; one whose index they cannot open is
    named, counted as behind, and keeps the volume's marker (exit 1, not "complete")."""
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "unreadable")
        behind = _pending(t)
        m = max(behind)
        index = IndexStore(Path(t.settings.volumes.index.path))
        path = index.path(m)
        for extra in ("-wal", "-shm"):
            path.with_name(path.name + extra).unlink(missing_ok=True)
        path.write_bytes(b"not a database " * 400)
        r = standby_cli(t.cfg, "index", "catch-up", "--json")
        assert r.rc == 1, r.describe()
        r.assert_no_traceback()
        d = r.summary
        assert d["errors"] == 1 and f"mailbox {m}: its index" in d["error_samples"][0], d
        assert d["complete"] is False and d["mailboxes_behind"] == 1 and not d["marker_cleared"]
        assert d["documents"] == sum(n for k, n in behind.items() if k != m), d
        assert (Path(t.settings.volumes.index.path) / CATCHUP_MARKER).exists()


def test_catch_up_refuses_while_a_replay_is_unfinished(make_store, deferred: Deferred) -> None:
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "unfinished")
        (t.settings.state_dir / "replay.incomplete").write_text("started\n")
        r = standby_cli(t.cfg, "index", "catch-up")
        assert r.rc == 5 and "replay" in r.err, r.describe()
        r.assert_no_traceback()
        assert sum(_pending(t).values()) == deferred.pending


def test_digest_per_volume_changes_with_that_volume_only(make_store,
                                                         deferred: Deferred) -> None:
    with Lab(make_store) as lab:
        t = _clone(lab, deferred, "volumes")
        base = digest(t, catch_up=False)
        m = base.mailboxes[0].mailbox_id
        blobs = BlobStore(Path(t.settings.volumes.blob.path))
        victim = next(iter(blobs.mailbox_blobs(m)))
        victim.write_bytes(victim.read_bytes() + b"x")
        d1 = digest(t, catch_up=False)
        assert base.equal(d1) == {"db": True, "blob": False, "index": True, "all": False}
        index = IndexStore(Path(t.settings.volumes.index.path))
        with index.use(m, create=False) as idx:
            assert idx is not None
            idx.db.execute("DELETE FROM folders WHERE id = 17")
        index.close()
        d2 = digest(t, catch_up=False)
        assert d1.equal(d2) == {"db": True, "blob": True, "index": False, "all": False}
        site = Site(t.settings)
        with site.database():
            conn = site.connect()
            try:
                cur = conn.cursor()
                cur.execute(f"UPDATE mboxgroup{group_of(m, site.groups)}.mail_item SET"
                            " flags = flags ^ 1 WHERE mailbox_id = %s AND id = 2", (m,))
                conn.commit()
            finally:
                conn.close()
        d3 = digest(t, catch_up=False)
        assert d2.equal(d3) == {"db": False, "blob": True, "index": True, "all": False}
        out = standby_cli(t.cfg, "store", "digest").assert_ok().out
        assert f"volume db {d3.volumes['db']}" in out
        assert f"volume index {d3.volumes['index']}" in out
        assert "documents still pending" in out
