"""Replay correctness against the real store, as Hypothesis properties over random workloads.

Each example runs a real primary (private MariaDB, store service) under loadgen with a random
seed, 3-8 accounts, 100-400 actions, 1-3 concurrent clients and small rollover sizes (so the log
spans several files), stops it, and takes its digest as the truth. Then:

Every replay runs with `--index defer` (the default), and every digest is taken after the index
catch-up (`replay_util.digest`): the properties hold for the two-phase replay. (a) also checks
the phases apart — db and blob equal the primary's the moment the replay ends, the index once
`standby index catch-up` has run — and the one-phase `--index now` with the fast engine.

- (a) `zmplayredo` from empty with the fast and with the naive engine gives the primary's digest;
- (b) a standby assembled from DB, blob and index copies taken at three moments while the load
  runs (each a consistent copy of one volume: store frozen, MariaDB quiesced for the db volume),
  plus the full redo log, replayed `--fromTime <first copy>` gives the primary's digest;
- (c) replaying twice changes nothing the second time, and a replay SIGKILLed at a random moment
  (with its worker processes, sometimes with its MariaDB) leaves the `replay.incomplete` marker,
  `standby store start` refuses while it is there, and running the replay again gives the
  primary's digest (and `store start` then works); a fast-engine worker killed on its own makes
  the replay fail with exit 7 and a clear message, and a re-run completes it;
- (e) `--toTime`, `--toSeq` and `--mailboxId` give exactly the state of the ops they select,
  checked against the naive engine replaying, from empty, a log holding exactly the transactions
  Zimbra's rules select (`replay_util.committed_txns`, written without `standby.replay`); the
  `--toTime` cut is the commit time of a random op, which must be included, and no blob of an
  excluded message may be written.
(d), fast engine = naive engine, is part of (a) and (b) here and of `test_replay_logs.py`.

Workloads use loadgen's default mix or `MAIL_HEAVY_MIX` (Zimbra's other mail ops as frequent as
moves); each property pins one mail-heavy example and checks that its examples together wrote
every op of `ZIMBRA_MAIL_OPS` (copies, drafts, config sections, purges, ...), so the properties
hold with them, not merely around them.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from standby import timefmt
from standby.bench.synth import write_log
from standby.redolog.ops import (
    CopyItem,
    CreateContact,
    CreateMessage,
    ModifyContact,
    SaveDraft,
    StoreIncomingBlob,
)
from standby.store.blobs import BlobStore
from standby.store.index import IndexStore
from standby.store.loadgen import run as loadgen
from standby.store.site import Site
from tests.replay_util import (
    ALL_FORMATS,
    MIXES,
    MS_FORMATS,
    ZIMBRA_MAIL_OPS,
    Lab,
    applied_ops,
    committed_txns,
    digest,
    expected_store,
    first_op_tstamp,
    group_members,
    kill_group,
    log_files,
    property_settings,
    run_primary,
    spawn_zmplayredo,
    standby_cli,
    zimbra_time,
    zmplayredo,
)

pytestmark = pytest.mark.services

workloads = st.fixed_dictionaries({
    "seed": st.integers(0, 2**20),
    "accounts": st.integers(3, 8),
    "ops": st.integers(100, 400),
    "workers": st.integers(1, 3),
    "rollover_kb": st.sampled_from([24, 48, 96]),
    "mix": st.sampled_from(sorted(MIXES)),
})
# A workload that writes every op of ZIMBRA_MAIL_OPS (checked by `_wrote_every_mail_op`).
MAIL_HEAVY = {"seed": 7, "accounts": 3, "ops": 400, "workers": 1, "rollover_kb": 48,
              "mix": "mail-heavy"}


def _wrote_every_mail_op(seen: Counter[str], what: str) -> None:
    missing = ZIMBRA_MAIL_OPS - {name for name, n in seen.items() if n}
    assert not missing, f"{what}: no example's log held {sorted(missing)}; seen {dict(seen)}"


def _assert_same(got: Any, want: Any, what: str) -> None:
    if got.total == want.total:
        return
    g = {m.mailbox_id: m for m in got.mailboxes}
    w = {m.mailbox_id: m for m in want.mailboxes}
    diff = {m: (g[m].as_dict() if m in g else None, w[m].as_dict() if m in w else None)
            for m in sorted(set(g) | set(w))
            if m not in g or m not in w or g[m].digest != w[m].digest}
    raise AssertionError(f"{what}: digests differ; per mailbox (got, want): {diff}")


# --------------------------------------------------------------------------------------------
# (a) from empty, both engines


def test_replay_from_empty_gives_primary_digest(make_store) -> None:
    seen: Counter[str] = Counter()

    @property_settings(4, ci=2)
    @example(w=MAIL_HEAVY)
    @given(w=workloads)
    def prop(w: dict[str, Any]) -> None:
        with Lab(make_store) as lab:
            p = run_primary(lab, **w)
            seen.update(p.ops)
            assert len(log_files(p.redolog)) > 2, "the workload should span several log files"
            for engine, mode in (("fast", "defer"), ("naive", "defer"), ("fast", "now")):
                t = lab.store(f"standby-{engine}-{mode}")
                args: list[str | Path] = ["--json", "--log-dir", p.redolog]
                args += ["--naive"] if engine == "naive" else []
                args += ["--index", "now"] if mode == "now" else []
                r = zmplayredo(t.cfg, *args).assert_ok()
                s = r.summary
                assert s["engine"] == engine
                assert s["errors"] == 0 and s["player"]["uncommitted"] == 0, s
                assert not (t.settings.state_dir / "replay.incomplete").exists()
                what = f"{engine} --index {mode} replay from empty"
                mail = digest(t, catch_up=False)
                eq = mail.equal(p.digest)
                assert eq["db"] and eq["blob"], f"{what}: db/blob not equal right after it: {eq}"
                index = s["phases"]["index"]
                if mode == "defer":
                    pending = sum(m.pending for m in mail.mailboxes)
                    assert index["documents_pending"] == pending > 0, (index, pending)
                    assert not eq["index"], "the index cannot be complete before its catch-up"
                    c = standby_cli(t.cfg, "index", "catch-up", "--json").assert_ok().summary
                    assert c["documents"] == pending and c["complete"], c
                else:
                    assert index == {"mode": "now", "state": "done"}, index
                _assert_same(digest(t, catch_up=False), p.digest, what)

    prop()
    _wrote_every_mail_op(seen, "(a) from empty")


# --------------------------------------------------------------------------------------------
# (b) staggered snapshots + --fromTime


def _copy_db_quiesced(h: Any, dest: Path) -> int:
    """A consistent copy of a running MariaDB's volume: commits blocked (BACKUP STAGE
    BLOCK_COMMIT), every dirty page flushed and the redo log at rest; returns the time just
    before the copy.

    "At rest" is `Innodb_checkpoint_age` no longer moving rather than 0: MariaDB 10.11 logs
    records after its last checkpoint (its own FILE_CHECKPOINT, 16 bytes, and others) and, with
    no dirty page left, takes no further checkpoint, so the age can stay at a few dozen bytes.
    Nothing is written while it stays still, which is what a file copy needs."""
    conn = Site(h.settings).db.connect(autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute("BACKUP STAGE START")
        cur.execute("BACKUP STAGE BLOCK_COMMIT")
        cur.execute("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
        (old_pct,) = cur.fetchone()
        cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        try:
            deadline = time.monotonic() + 30
            seen: list[tuple[int, int]] = []
            while True:
                cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN"
                            " ('Innodb_buffer_pool_pages_dirty', 'Innodb_checkpoint_age')")
                st = {k: int(v) for k, v in cur.fetchall()}
                seen.append((st.get("Innodb_buffer_pool_pages_dirty", -1),
                             st.get("Innodb_checkpoint_age", -1)))
                last = seen[-4:]
                if len(last) == 4 and all(x == (0, last[0][1]) for x in last):
                    break
                assert time.monotonic() < deadline, f"MariaDB did not quiesce: {seen[-5:]}"
                time.sleep(0.05)
            at = timefmt.now_ms()
            shutil.copytree(h.settings.volumes.db.path, dest)
        finally:
            cur.execute(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(old_pct)}")
            cur.execute("BACKUP STAGE END")
    finally:
        conn.close()
    return at


def _snapshot(h: Any, volume: str, dest: Path) -> int:
    """Freeze the store (new changes wait, in-flight ones finish), copy one volume, thaw."""
    with h.client() as c:  # a dedicated connection: the freeze belongs to it
        c.call("freeze", timeout_s=120)
        try:
            if volume == "db":
                return _copy_db_quiesced(h, dest)
            at = timefmt.now_ms()
            shutil.copytree(getattr(h.settings.volumes, volume).path, dest)
            return at
        finally:
            c.call("thaw")


GUIDE_ORDER = ("db", "blob", "index")


def test_staggered_snapshots_plus_log_from_time_give_primary_digest(make_store) -> None:
    """The guide's order (db, blob, index) first; then random orders, because replay is
    idempotent per volume: a volume copied later must simply skip more."""
    seen: Counter[str] = Counter()

    @property_settings(2, ci=1)
    @example(w=MAIL_HEAVY, gaps=[0.5, 0.8, 0.6], fmt="yyyy/MM/dd HH:mm:ss:SSS", order=GUIDE_ORDER)
    @given(w=workloads, gaps=st.lists(st.floats(0.4, 1.0), min_size=3, max_size=3),
           fmt=st.sampled_from(ALL_FORMATS), order=st.permutations(GUIDE_ORDER))
    def prop(w: dict[str, Any], gaps: list[float], fmt: str, order: tuple[str, ...]) -> None:
        event(f"order {'/'.join(order)}")
        with Lab(make_store) as lab:
            p = lab.store("primary",
                          sections={"redolog": {"rollover_size_kb": w["rollover_kb"]}})
            p.start()
            snaps = p.root / "snaps"
            load: dict[str, Any] = {}

            def drive() -> None:
                load["res"] = loadgen(p.settings.store_socket, accounts=w["accounts"],
                                      ops=w["ops"], seed=w["seed"], workers=w["workers"],
                                      mix=MIXES[w["mix"]], rate=w["ops"] / 4.0)

            th = threading.Thread(target=drive, daemon=True)
            th.start()
            # Some ops must lie before the first copy even when --fromTime is cut to the second
            # (formats without milliseconds): wait for committed ops, then a second more.
            deadline = time.monotonic() + 120
            while len(committed_txns(log_files(p.settings.volumes.redolog.path)).txns) < 5:
                assert time.monotonic() < deadline and th.is_alive(), "loadgen committed nothing"
                time.sleep(0.1)
            time.sleep(1.05)
            taken: dict[str, int] = {}
            for volume, gap in zip(order, gaps):
                time.sleep(gap)
                taken[volume] = _snapshot(p, volume, snaps / volume)
            th.join(300)
            assert not th.is_alive() and load["res"].errors == 0, load
            p.stop()
            want = digest(p)
            committed = committed_txns(log_files(p.settings.volumes.redolog.path)).txns
            seen.update(x.op.NAME for x in committed)
            total = len(committed)
            assert [taken[v] for v in order] == sorted(taken.values())
            from_time = zimbra_time(min(taken.values()), fmt)
            for engine in ("fast", "naive"):
                t = lab.store(f"standby-{engine}")
                vols = t.settings.volumes
                for volume in ("db", "blob", "index"):
                    shutil.copytree(snaps / volume, getattr(vols, volume).path,
                                    dirs_exist_ok=True)
                shutil.copytree(p.settings.volumes.redolog.path, vols.redolog.path,
                                dirs_exist_ok=True)
                args = ["--json", "--fromTime", from_time] + (["--naive"] if engine == "naive"
                                                              else [])
                s = zmplayredo(t.cfg, *args).assert_ok().summary
                assert s["errors"] == 0, s
                assert s["ops_read"] < total, \
                    "--fromTime should leave out the ops before the copies"
                _assert_same(digest(t), want, f"{engine} replay --fromTime {from_time!r} onto "
                             f"snapshots taken at {taken}")

    prop()
    _wrote_every_mail_op(seen, "(b) snapshots + --fromTime")


# --------------------------------------------------------------------------------------------
# (c) twice, and killed mid-way


def test_replay_twice_and_killed_replays_converge(make_store) -> None:
    killed_mid_way: list[int] = []  # processes killed, per interruption
    seen: dict[str, Counter[str]] = {"fast": Counter(), "naive": Counter()}

    @property_settings(4, ci=2)
    @example(w=MAIL_HEAVY, engine="fast", batch=60, kills=1, fractions=[0.5, 0.5], kill_db=False)
    @example(w=MAIL_HEAVY, engine="naive", batch=60, kills=1, fractions=[0.3, 0.5],
             kill_db=True)
    @given(w=workloads, engine=st.sampled_from(["fast", "naive"]),
           batch=st.sampled_from([20, 60, 50_000]), kills=st.integers(1, 2),
           fractions=st.lists(st.floats(0.0, 0.9), min_size=2, max_size=2),
           kill_db=st.booleans())
    def prop(w: dict[str, Any], engine: str, batch: int, kills: int, fractions: list[float],
             kill_db: bool) -> None:
        with Lab(make_store) as lab:
            p = run_primary(lab, **w)
            seen[engine].update(p.ops)
            eng = ["--naive"] if engine == "naive" else ["--batch-ops", str(batch)]
            base = ["--json", "--log-dir", str(p.redolog), *eng]

            # Twice: the second run finds every op applied on the database and the index.
            # (The naive engine writes the blob of every CreateMessage whose file is missing,
            # including messages deleted later, and its garbage pass removes them again; the
            # fast engine writes only blobs that survive the run.)
            a = lab.store("twice")
            first = zmplayredo(a.cfg, *base).assert_ok().summary
            second = zmplayredo(a.cfg, *base).assert_ok().summary
            assert second["ops_read"] == first["ops_read"]
            assert "applied" not in second["db"], second["db"]
            assert "applied" not in second["index"], second["index"]
            if engine == "fast":
                assert "written" not in second["blob"], second["blob"]
                assert second["garbage_removed"] == 0
            _assert_same(digest(a), p.digest, "replayed twice")

            # Killed at a random moment after it marked the volumes, then run again.
            b = lab.store("killed")
            marker = b.settings.state_dir / "replay.incomplete"
            for k in range(kills):
                proc = spawn_zmplayredo(b.cfg, *base)
                deadline = time.monotonic() + 60
                # Once the volumes are marked (and, for the fast engine, its workers run).
                need = 2 if engine == "fast" else 1
                while proc.poll() is None and not (
                        marker.exists() and len(group_members(proc.pid)) >= need):
                    assert time.monotonic() < deadline, "the replay never wrote its marker"
                    time.sleep(0.002)
                time.sleep(fractions[k] * first["seconds"])
                finished = proc.poll() is not None
                members = kill_group(proc)
                if finished:
                    break  # it ended before the kill: nothing interrupted
                killed_mid_way.append(len(members))
                if kill_db:
                    Site(b.settings).db.kill()
                if not marker.exists():
                    # Only a finished replay clears its marker: the kill came in the last
                    # moments of a complete run (printing its summary), which the volumes show.
                    _assert_same(digest(b), p.digest, "a replay that cleared its marker")
                    break
                refused = standby_cli(b.cfg, "store", "start")
                assert refused.rc == 5, refused.describe()
                assert "replay" in refused.err and "interrupted" in refused.err, refused.describe()
                refused.assert_no_traceback()
            zmplayredo(b.cfg, *base).assert_ok()
            assert not marker.exists()
            _assert_same(digest(b), p.digest, f"replay killed {kills}x ({engine}) then re-run")

    prop()
    assert killed_mid_way, "no example actually interrupted a replay"
    for engine, ops in seen.items():
        _wrote_every_mail_op(ops, f"(c) twice and killed, {engine} engine")


def test_store_starts_after_an_interrupted_replay_is_completed(make_store) -> None:
    """The marker blocks `store start` only until a replay completes."""
    with Lab(make_store) as lab:
        p = run_primary(lab, seed=11, accounts=3, ops=120, workers=2, rollover_kb=48)
        t = lab.store("standby")
        marker = t.settings.state_dir / "replay.incomplete"
        proc = spawn_zmplayredo(t.cfg, "--log-dir", p.redolog, "--batch-ops", "10")
        deadline = time.monotonic() + 60
        while not (marker.exists() and len(group_members(proc.pid)) >= 2):
            assert time.monotonic() < deadline and proc.poll() is None, "finished too soon"
            time.sleep(0.002)
        time.sleep(0.05)
        members = kill_group(proc)
        assert len(members) >= 2, f"the replay and its worker processes: {members}"
        assert marker.exists()
        assert standby_cli(t.cfg, "store", "start").rc == 5
        zmplayredo(t.cfg, "--log-dir", p.redolog).assert_ok()
        want = digest(t)
        standby_cli(t.cfg, "store", "start").assert_ok()
        standby_cli(t.cfg, "store", "stop").assert_ok()
        _assert_same(want, p.digest, "completed replay")


def test_replay_whose_worker_dies_fails_clearly_and_can_be_rerun(make_store) -> None:
    """A fast-engine worker killed on its own (the OOM killer, an operator): the replay stops
    with the service-failure exit code and a message naming the worker, no traceback, the
    volumes stay marked; the next run completes. Regression: the main process got EOFError from
    the worker's pipe and exited 1 with only "Aborted."."""
    with Lab(make_store) as lab:
        holder = lab.store("log")
        logdir = holder.root / "synth"
        write_log(logdir, ops=3000, accounts=5, seed=8, rollover_mb=1)
        ref = lab.store("reference")
        zmplayredo(ref.cfg, "--naive", "--log-dir", logdir).assert_ok()
        want = digest(ref)
        t = lab.store("standby")
        marker = t.settings.state_dir / "replay.incomplete"
        proc = spawn_zmplayredo(t.cfg, "--log-dir", logdir, "--batch-ops", "100",
                                "--threads", "2")
        deadline = time.monotonic() + 60
        while not (marker.exists() and len(group_members(proc.pid)) >= 2):
            assert time.monotonic() < deadline and proc.poll() is None, "no workers seen"
            time.sleep(0.002)
        time.sleep(0.2)
        assert proc.poll() is None, "the replay finished before the worker could be killed"
        worker = next(p for p in group_members(proc.pid) if p != proc.pid)
        os.kill(worker, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        text = (out + err).decode("utf-8", "replace")
        assert proc.returncode == 7, text
        assert "replay worker" in text and f"pid {worker}" in text, text
        assert "Traceback" not in text, text
        kill_group(proc)  # nothing of it may be left
        assert marker.exists()
        assert standby_cli(t.cfg, "store", "start").rc == 5
        zmplayredo(t.cfg, "--log-dir", logdir).assert_ok()
        assert not marker.exists()
        _assert_same(digest(t), want, "re-run after a worker died")


# --------------------------------------------------------------------------------------------
# (e) selections give exactly the state of the ops selected


def test_selective_replays_give_exactly_the_selected_ops(make_store) -> None:
    seen: Counter[str] = Counter()

    @property_settings(3, ci=2)
    @example(w=MAIL_HEAVY, cut=0.6, fmt=MS_FORMATS[0], seq_cut=0.5, box_pick=1)
    @given(w=workloads, cut=st.floats(0.05, 0.95), fmt=st.sampled_from(MS_FORMATS),
           seq_cut=st.floats(0.0, 1.0), box_pick=st.integers(0, 100))
    def prop(w: dict[str, Any], cut: float, fmt: str, seq_cut: float, box_pick: int) -> None:
        with Lab(make_store) as lab:
            p = run_primary(lab, **w)
            seen.update(p.ops)
            logs = log_files(p.redolog)
            everything = committed_txns(logs).txns
            ops = applied_ops(everything)

            # --toTime: the commit time of a random op; that op is included (commit <= toTime).
            pivot = ops[int(cut * (len(ops) - 1))]
            to_ms = pivot.commit.tstamp
            # Zimbra reads no file whose first op is after toTime (its header says so), then runs
            # the transactions committed at or before toTime.
            readable = [lf for lf in logs if first_op_tstamp(lf.path) <= to_ms]
            picked = [t for t in committed_txns(readable).txns if t.commit.tstamp <= to_ms]
            picked_ids = {t.start.txn for t in picked}
            excluded = [t for t in everything if t.start.txn not in picked_ids]
            assert excluded
            # The pivot is in unless its file's header shows a first op after it (a commit stamped
            # before the file's first record, possible at ms granularity under concurrency).
            pivot_in = pivot.start.txn in picked_ids
            _, want = expected_store(lab, "expect-totime", picked)
            for engine in ("fast", "naive"):
                t = lab.store(f"totime-{engine}")
                args: list[str | Path] = ["--json", "--log-dir", p.redolog, "--toTime",
                                          zimbra_time(to_ms, fmt)]
                s = zmplayredo(t.cfg, *args, *(["--naive"] if engine == "naive" else [])
                               ).assert_ok().summary
                assert s["ops_read"] == len(picked), (s["ops_read"], len(picked))
                got = digest(t)
                _assert_same(got, want, f"{engine} --toTime {zimbra_time(to_ms, fmt)}")
                _check_boundary(t, pivot if pivot_in else None, picked)
                _check_no_blob_outside(t, s, picked, excluded)

            # --toSeq: files whose sequence is at most N; transactions committed in later files
            # (including ones re-logged across the rollover) stay uncommitted.
            seqs = [lf.seq for lf in logs]
            n = seqs[min(len(seqs) - 1, int(seq_cut * len(seqs)))]
            selected = committed_txns([lf for lf in logs if lf.seq <= n])
            _, want = expected_store(lab, "expect-toseq", selected.txns)
            t = lab.store("toseq")
            s = zmplayredo(t.cfg, "--json", "--log-dir", p.redolog, "--toSeq", str(n)).assert_ok()\
                .summary
            assert s["player"]["files"] == len([x for x in seqs if x <= n])
            assert s["player"]["uncommitted"] == len(selected.uncommitted)
            _assert_same(digest(t), want, f"--toSeq {n}")

            # --mailboxId: that mailbox's ops and the StoreIncomingBlobs (mailbox -1) naming it.
            boxes = sorted(md.mailbox_id for md in p.digest.mailboxes)
            m = boxes[box_pick % len(boxes)]
            mine = [x for x in everything if x.start.mailbox_id == m or (
                isinstance(x.op, StoreIncomingBlob) and m in (x.op.mailbox_ids or ()))]
            _, want = expected_store(lab, "expect-mbox", mine)
            for engine in ("fast", "naive"):
                t = lab.store(f"mbox-{engine}")
                zmplayredo(t.cfg, "--json", "--log-dir", p.redolog, "--mailboxId", str(m),
                           *(["--naive"] if engine == "naive" else [])).assert_ok()
                got = digest(t)
                _assert_same(got, want, f"{engine} --mailboxId {m}")
                assert [md.mailbox_id for md in got.mailboxes] == [m]
                assert got.mailboxes[0].digest == next(md.digest for md in p.digest.mailboxes
                                                       if md.mailbox_id == m)

    prop()
    _wrote_every_mail_op(seen, "(e) selective replays")


def _check_boundary(t: Any, pivot: Any, picked: list[Any]) -> None:
    """Per mailbox, the index has applied exactly up to the last selected change number; so the
    op committed exactly at --toTime ran and none committed after it did."""
    last: dict[int, int] = {}
    for x in applied_ops(picked):
        last[x.start.mailbox_id] = max(last.get(x.start.mailbox_id, 0), x.start.change_id)
    if pivot is not None:
        assert last[pivot.start.mailbox_id] >= pivot.start.change_id
    index = IndexStore(Path(t.settings.volumes.index.path))
    try:
        for m, change in sorted(last.items()):
            with index.use(m, create=False) as idx:
                assert idx is not None, f"mailbox {m} has no index"
                assert idx.hwm == change, f"mailbox {m}: index at change {idx.hwm}, want {change}"
    finally:
        index.close()


def _check_no_blob_outside(t: Any, summary: dict[str, Any], picked: list[Any],
                           excluded: list[Any]) -> None:
    """No blob of a message, draft or copy whose op was not selected is on the blob volume, and
    the replay wrote no more blobs than the selected ops carry (a body each for a message and
    a saved draft, one per copy, a contact's vCard)."""
    blobs = BlobStore(t.settings.volumes.blob.path)
    for x in excluded:
        op, m, change = x.op, x.start.mailbox_id, x.start.change_id
        made = [op.msg_id] if isinstance(op, CreateMessage | SaveDraft) else \
            [e[1] for e in op.entries] if isinstance(op, CopyItem) else []
        for item_id in made:
            path = blobs.path(m, item_id, change)
            assert not path.exists(), f"blob of an excluded {op.NAME} written: {path}"
    carrying = sum(len(x.op.entries) if isinstance(x.op, CopyItem) else 1 for x in picked
                   if isinstance(x.op, CreateMessage | SaveDraft | CopyItem) or (
                       isinstance(x.op, CreateContact | ModifyContact) and x.op.data))
    assert summary["blob"].get("written", 0) <= carrying, (summary["blob"], carrying)
    incoming = Path(t.settings.volumes.blob.path) / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
