"""`standby bench failover`: a failover measured end to end, against the machine's own ceilings.

1. A primary with history: `history_ops` ops of loadgen's mix (`bench.synth`, written by the redo
   writer into the primary's redolog volume) brought onto its db, blob and index volumes (a
   one-phase replay), and a snapshot set taken (`snapshot.sets.take`, `dir` backend, the redo
   position at that moment in its manifest).
2. `ops` more ops of the same mix in the same log; the primary's final state (its volumes brought
   forward from the set, one phase) is the truth every standby is compared with.
3. The ceilings, measured in the same run, first (before any standby is removed): LOAD DATA
   rows/s into the same schema and file creates/s on the blob volume, combined for the rows and
   files per op the fast engine left (`ceiling_mail_ops_per_s`, as `bench replay` defines it);
   MIME parse plus FTS5 insert per document, on every core at once, in transactions of the
   catch-up's size (`ceiling_catchup_docs_per_s`).
4. Standbys, one after another, restore the set (the snapshot copies of db, blob and index; the
   primary's whole redo log, as shipped, hard-linked in) and replay from the set's recorded
   position (`zmplayredo --set ID --catalog ...`, as an operator runs it):
   - fast engine, `--index defer`: phase one (`mail_ops_per_s`, `rto_mail_s`), then
     `standby index catch-up` (`catchup_docs_per_s`, `rto_search_s`); db and blob compared with
     the primary right after phase one, the index after the catch-up (`digest_equal`);
   - fast engine, `--index now` (one phase): `now_ops_per_s`, compared with the primary too;
   - the naive engine (one op per transaction, Zimbra's way, documents deferred as Zimbra defers
     them) on the first `naive_ops` ops: `naive_ops_per_s`, `speedup_mail`.
CPU seconds by process and peak resident memory (the replay and its workers, MariaDB apart) are
sampled from /proc for each run. `rto_mail_s` is the restore plus the replay command's whole
run; `rto_search_s` adds the catch-up command's.

The disk is shared: the folder (`bench.workdir`) is checked for room first and removed however
the run ends; the set's copy of the log is dropped (the standbys link the primary's). Where the
disk has room for the rest of the run beside them, the primary's volumes and each measured
standby's are kept until the end: on ext4 without a journal, files created within minutes of a
mass removal are many times slower to create. Otherwise each goes once measured, followed by a
pause (`workdir.SETTLE_S`), so at most one store's volumes exist beside the log and the set;
`stores_removed_between_runs` says which happened, `work_folder_peak_gb` what it cost.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby._process import forking
from standby import settings as settings_mod
from standby.bench import synth
from standby.bench.workdir import drop_volumes, folder_bytes, work_folder
from standby.bench.replay import (
    NAIVE_MIN_OPS,
    ceiling,
    file_create_rate,
    make_store,
    ops_ceiling,
    proc_cpu_s,
)
from standby.catalog import local
from standby.catalog.manifest import Manifest
from standby.errors import ServiceError
from standby.redolog.ops import CreateMessage
from standby.redolog.writer import RedoLogWriter, WriterConfig
from standby.replay import engine
from standby.replay.bulk import TSV_ENGINE
from standby.replay.player import Player, Selection, select_files
from standby.settings import Settings
from standby.snapshot import sets
from standby.store import control
from standby.store.digest import digest_settings
from standby.store.index import CATCHUP_BATCH, MailboxIndex
from standby.store.mime import message_fields
from standby.store.site import Site

BIN = Path(sys.executable).parent
START_MS = 1_700_000_000_000


class _Log:
    """The primary's redo log, written in legs by one synthetic mix (its state carries over)."""

    def __init__(self, redolog_dir: Path, *, accounts: int, seed: int, server_id: str) -> None:
        holder: list[synth.Synth] = []
        self.w = RedoLogWriter(redolog_dir, server_id=server_id,
                               clock=lambda: int(holder[0].now) if holder else START_MS,
                               config=WriterConfig(fsync_interval_ms=0, rollover_size=100 << 20,
                                                   rollover_min_age_ms=0,
                                                   rollover_hard_max=200 << 20),
                               fsync=lambda fd: None)
        self.w.open()
        self.synth = synth.Synth(self.w, accounts=accounts, seed=seed, start_ms=START_MS)
        holder.append(self.synth)
        self.synth.create_mailboxes()

    def write(self, ops: int) -> None:
        target = self.synth.result.ops + ops
        while self.synth.result.ops < target:
            self.synth.step_once()

    @property
    def now_ms(self) -> int:
        return int(self.synth.now) + 1

    def close(self) -> None:
        self.w.close()


@dataclass
class _Sample:
    """CPU seconds per process and the peak resident memory of a process tree, from /proc."""

    root: int
    cpu: dict[int, tuple[str, float]] = field(default_factory=dict)
    peak_rss_kb: int = 0
    peak_rss_mariadbd_kb: int = 0

    def take(self) -> None:
        rss = db_rss = 0
        for pid, name in _tree(self.root):
            c = proc_cpu_s(pid)
            if c:
                self.cpu[pid] = (name, c)
            kb = _rss_kb(pid)
            if name == "mariadbd":
                db_rss += kb
            else:
                rss += kb
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_rss_mariadbd_kb = max(self.peak_rss_mariadbd_kb, db_rss)

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, c in self.cpu.values():
            out[name] = round(out.get(name, 0.0) + c, 2)
        return out


def _tree(root: int) -> list[tuple[int, str]]:
    """`root` and its descendants as (pid, main | workers | mariadbd)."""
    parent: dict[int, int] = {}
    names: dict[int, bytes] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            names[int(d)] = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [(root, "main")], [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        out += [(k, "mariadbd" if b"mariadbd" in names.get(k, b"") else "workers") for k in kids]
        frontier = kids
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _run_sampled(argv: list[str], *, every_s: float = 0.2) -> tuple[dict[str, Any], _Sample,
                                                                     float]:
    """Run a command (JSON summary on its last stdout line) with its tree sampled; returns
    (summary, samples, wall seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    sample = _Sample(proc.pid)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            sample.take()
            done.wait(every_s)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    if proc.returncode not in (0, 1):
        raise ServiceError(f"{' '.join(argv[:3])} failed with exit {proc.returncode}: "
                           f"{err.decode('utf-8', 'replace')[-2000:]}")
    lines = [ln for ln in out.decode().splitlines() if ln.strip()]
    return json.loads(lines[-1]), sample, wall


def _restore(m: Manifest, log_dir: Path, standby: Settings) -> float:
    """The set's db, blob and index copies onto the standby's volumes (as `standby pull` leaves
    them), and the primary's whole redo log linked in (hard links: shipping brought it, the
    replay only reads it, and a copy per standby would cost the log's size again); returns the
    seconds it took."""
    t0 = time.perf_counter()
    for rec in m.snapshots:
        if rec.volume == "redolog":
            continue
        target = getattr(standby.volumes, rec.volume).path
        shutil.rmtree(target)
        shutil.copytree(rec.ref, target, symlinks=True)
        (target / ".standby-snapshot").unlink(missing_ok=True)
        (target / "data" / "standby-owner.pid").unlink(missing_ok=True)
    target = standby.volumes.redolog.path
    shutil.rmtree(target)
    shutil.copytree(log_dir, target, symlinks=True, copy_function=os.link)
    return time.perf_counter() - t0


def _parse_and_insert(args: tuple[list[bytes], str, int]) -> tuple[int, float, float, float]:
    """One core's share of the catch-up ceiling: parse each message, insert the documents into
    a fresh index in transactions of `batch`; (documents, seconds, parse s, insert s)."""
    raws, path, batch = args
    idx = MailboxIndex(Path(path))
    t0 = time.perf_counter()
    parse_s = insert_s = 0.0
    for i in range(0, len(raws), batch):
        t = time.perf_counter()
        docs = [(n, message_fields(r)) for n, r in enumerate(raws[i:i + batch], start=i + 1)]
        t1 = time.perf_counter()
        idx.begin()
        idx.db.executemany("INSERT INTO docs (rowid, subject, sender, recipients, body)"
                           " VALUES (?, ?, ?, ?, ?)",
                           [(n, f.subject, f.sender, f.recipients, f.text) for n, f in docs])
        idx.commit()
        parse_s += t1 - t
        insert_s += time.perf_counter() - t1
    seconds = time.perf_counter() - t0
    idx.close()
    return len(raws), seconds, parse_s, insert_s


def catchup_ceiling(log_dir: Path, *, messages: int = 4000, workers: int = 0,
                    batch: int = CATCHUP_BATCH) -> dict[str, float]:
    """MIME parse plus FTS5 insert per document on every core at once, on this log's messages
    (the last `messages` delivered inline), into fresh indexes: docs/s the cores allow."""
    raws: list[bytes] = []
    logs, _ = select_files(log_dir, Selection())
    for rec, _p in Player(Selection()).play(logs[-2:]):
        op = rec.op
        if isinstance(op, CreateMessage) and op.data and len(op.data) == op.msg_size:
            raws.append(bytes(op.data))
    raws = raws[-messages:]
    n = workers or os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="standby-catchup-ceiling-"))
    try:
        shares = [(raws[i::n], str(tmp / f"{i}.sqlite"), batch) for i in range(n)]
        with forking() as ctx:
            pool = ctx.Pool(n)
        with pool:
            got = pool.map(_parse_and_insert, shares)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    docs = sum(g[0] for g in got)
    slowest = max(g[1] for g in got)
    return {"ceiling_catchup_docs_per_s": round(docs / slowest) if slowest else 0.0,
            "mean_message_bytes": sum(map(len, raws)) / max(len(raws), 1),
            "mime_parse_us": round(sum(g[2] for g in got) / docs * 1e6, 1),
            "fts_insert_us": round(sum(g[3] for g in got) / docs * 1e6, 1),
            "ceiling_catchup_messages": docs, "ceiling_catchup_workers": n}


def _store(base: Path, name: str, server_id: str, key: str) -> Settings:
    s = make_store(base / name, manifest_key=key, server_id=server_id)
    return settings_mod.with_overrides(s, {"snapshot.stagger_s": 0.0})


# The work folder at its fullest (measured: `work_folder_peak_gb`): the primary's log, the set's
# db, blob and index copies, and one store's volumes (the primary's, then each standby's in
# turn), plus a few MariaDB servers' files.
DISK_FIXED_BYTES = 4 * (700 << 20)
DISK_BYTES_PER_OP = 25_000


def disk_estimate(total_ops: int) -> int:
    return DISK_FIXED_BYTES + DISK_BYTES_PER_OP * total_ops


class _Folder:
    """The work folder: stores made in it, its peak size, removal of a store once measured.

    A measured store is removed at once only when the disk lacks room for the rest of the run
    (`need` more bytes plus the margin) with it kept: otherwise it stays until the folder goes,
    as a removal would slow the next store's file creates for minutes (`workdir.SETTLE_S`) and
    charge the replays for the benchmark's own clean-up."""

    def __init__(self, base: Path, key: str, server_id: str, out: dict[str, Any],
                 say: Callable[[str], None], need: int = 0) -> None:
        self.base, self.key, self.server_id, self.out, self.say = base, key, server_id, out, say
        self.peak = 0
        self.need = need
        out["stores_removed_between_runs"] = 0

    def store(self, name: str) -> Settings:
        return _store(self.base, name, self.server_id, self.key)

    def measure(self) -> None:
        self.peak = max(self.peak, folder_bytes(self.base))
        self.out["work_folder_peak_gb"] = round(self.peak / 2**30, 2)

    def drop(self, s: Settings, *, volumes: tuple[str, ...] = ("db", "blob", "index", "redolog")
             ) -> None:
        """Remove a measured store's volumes (after noting the folder's size), or, with room
        to spare, only stop it."""
        self.measure()
        if drop_volumes(s, volumes, self.say, keep_if_room=self.need):
            self.out["stores_removed_between_runs"] += 1


def run(*, history_ops: int = 500_000, ops: int = 300_000, accounts: int = 500, seed: int = 1,
        naive_ops: int = NAIVE_MIN_OPS, workdir: Path | None = None, keep: bool = False,
        say: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    out: dict[str, Any] = {"history_ops": history_ops, "ops": ops, "accounts": accounts,
                           "tsv_engine": TSV_ENGINE, "cores": os.cpu_count()}
    need = disk_estimate(history_ops + ops)
    out["disk_estimate_gb"] = round(need / 2**30, 1)
    with work_folder("standby-bench-failover-", workdir=workdir, need_bytes=need, keep=keep,
                     say=say) as base:
        f = _Folder(base, secrets.token_hex(32), "bench-failover", out, say, need)
        p, m, want = _primary(f, history_ops=history_ops, ops=ops, accounts=accounts,
                              seed=seed)
        log_dir = p.volumes.redolog.path
        # The primary's volumes are done with (its log stays: the standbys link to it).
        f.drop(p, volumes=("db", "blob", "index"))
        # The ceilings first, on a file system that has settled, before any standby's removal.
        cs = f.store("ceiling")
        say("ceiling: LOAD DATA rows/s and file creates/s")
        cl = ceiling(cs)
        say("ceiling: MIME parse + FTS5 insert per document on every core")
        cc = catchup_ceiling(log_dir)
        mean_blob = int(cc.pop("mean_message_bytes"))
        # For information, not the ceiling's definition: file creates at this mix's mean
        # message size instead of 8 KB (the blobs this engine writes are that size).
        say(f"file creates/s at the mix's mean message size ({mean_blob} bytes)")
        rate = file_create_rate(cs.volumes.blob.path / "sized", file_size=mean_blob)
        control.stop(cs, timeout=60)
        catalog = str(local.for_settings(p).root)
        replay_args = ["--set", m.id, "--catalog", catalog, "--json"]
        rows_per_op, files_per_op = _standby_defer(f, m, log_dir, replay_args, want)
        _standby_now(f, m, log_dir, replay_args, want)
        _standby_naive(f, m, log_dir, naive_ops)

        out.update(cl)
        out.update(cc)
        out["rows_per_op"] = round(rows_per_op, 3)
        out["files_per_op"] = round(files_per_op, 3)
        out["ceiling_mail_ops_per_s"] = ops_ceiling(rows_per_op, files_per_op,
                                                    cl["load_data_rows_per_s"],
                                                    cl["file_creates_per_s"])
        out["ratio_to_ceiling_mail"] = round(out["mail_ops_per_s"] / out[
            "ceiling_mail_ops_per_s"], 3) if out["ceiling_mail_ops_per_s"] else None
        out["file_creates_per_s_at_blob_size"] = round(rate)
        out["mean_blob_bytes"] = mean_blob
        out["ceiling_mail_ops_per_s_at_blob_size"] = ops_ceiling(
            rows_per_op, files_per_op, cl["load_data_rows_per_s"], rate)
        out["ratio_to_ceiling_catchup"] = round(out["catchup_docs_per_s"] / cc[
            "ceiling_catchup_docs_per_s"], 3) if out["catchup_docs_per_s"] and cc[
            "ceiling_catchup_docs_per_s"] else None
        f.measure()
        return out


def _primary(f: _Folder, *, history_ops: int, ops: int, accounts: int, seed: int
             ) -> tuple[Settings, Manifest, Any]:
    """The primary with history, its set, the ops after it; (its settings, the set, the
    digest of its final state)."""
    out, say = f.out, f.say
    p = f.store("primary")
    say(f"primary: {history_ops} ops of history")
    t0 = time.perf_counter()
    log = _Log(p.volumes.redolog.path, accounts=accounts, seed=seed, server_id=f.server_id)
    log.write(history_ops)
    out["log_write_s"] = round(time.perf_counter() - t0, 1)
    everything = Selection()
    site = Site.open(p)
    t0 = time.perf_counter()
    engine.run(site, engine.find_logs(site, everything), everything,
               engine.EngineOptions(threads=os.cpu_count() or 2, index="now"))
    out["history_replay_s"] = round(time.perf_counter() - t0, 1)
    say("primary: taking a snapshot set")
    m = sets.take("set", p, clock_ms=lambda: log.now_ms).manifest
    out["set"] = m.id
    for rec in m.snapshots:  # the standbys get the whole log, never the set's copy of it
        if rec.volume == "redolog":
            shutil.rmtree(rec.ref, ignore_errors=True)
    say(f"primary: {ops} more ops")
    log.write(ops)
    log.close()
    out["log_bytes"] = sum(x.stat().st_size for x in p.volumes.redolog.path.rglob("*.log"))
    start = Selection(from_time=m.replay.from_time_ms, from_seq=m.replay.seq)
    truth = engine.run(site, engine.find_logs(site, start), start,
                       engine.EngineOptions(threads=os.cpu_count() or 2, index="now"))
    out["ops_applied_primary"] = truth.ops_applied
    say("primary: digest")
    return p, m, digest_settings(p)


def _standby_defer(f: _Folder, m: Manifest, log_dir: Path, replay_args: list[str],
                   want: Any) -> tuple[float, float]:
    """Fast engine, --index defer, then the catch-up; (rows, files) per op it left."""
    out, say = f.out, f.say
    say("standby (fast, --index defer): restore and replay")
    a = f.store("standby-defer")
    restore_s = _restore(m, log_dir, a)
    res, smp, wall = _run_sampled([str(BIN / "zmplayredo"), "--config", str(a.source),
                                   *replay_args])
    out["ops_applied"] = res["ops_applied"]
    out["mail_ops_per_s"] = round(res["ops_applied"] / res["seconds"])
    out["restore_s"] = round(restore_s, 1)
    out["replay_mail_s"] = res["seconds"]
    out["rto_mail_s"] = round(restore_s + wall, 1)
    out["cpu_seconds_mail"] = smp.by_kind()
    out["cpu_us_per_op_mail"] = {k: round(v / max(res["ops_applied"], 1) * 1e6, 1)
                                 for k, v in smp.by_kind().items()}
    out["worker_cpu_seconds_mail"] = res["worker_cpu_seconds"]
    out["peak_rss_mb"] = round(smp.peak_rss_kb / 1024)
    out["peak_rss_mariadbd_mb"] = round(smp.peak_rss_mariadbd_kb / 1024)
    out["index_after_mail"] = res["phases"]["index"]
    rows_per_op = res["rows_loaded"] / max(res["ops_applied"], 1)
    files_per_op = res["blob"].get("written", 0) / max(res["ops_applied"], 1)
    say("standby (fast, --index defer): digest of db and blob")
    mail_state = digest_settings(a)
    say("standby: index catch-up")
    cres, csmp, cwall = _run_sampled([str(BIN / "standby"), "--config", str(a.source),
                                      "index", "catch-up", "--json"])
    out["catchup_documents"] = cres["documents"]
    out["catchup_docs_per_s"] = round(cres["documents"] / cres["seconds"]) \
        if cres["seconds"] else None
    out["catchup_s"] = cres["seconds"]
    out["rto_search_s"] = round(out["rto_mail_s"] + cwall, 1)
    out["cpu_seconds_catchup"] = csmp.by_kind()
    out["cpu_us_per_doc_catchup"] = {k: round(v / max(cres["documents"], 1) * 1e6, 1)
                                     for k, v in csmp.by_kind().items()}
    out["peak_rss_catchup_mb"] = round(csmp.peak_rss_kb / 1024)
    out["catchup_complete"] = cres["complete"]
    say("standby (fast, --index defer): digest after the catch-up")
    final = digest_settings(a)
    eq_mail, eq_final = mail_state.equal(want), final.equal(want)
    out["digest_equal"] = {"db": eq_mail["db"], "blob": eq_mail["blob"],
                           "index": eq_final["index"], "db_after_catchup": eq_final["db"],
                           "blob_after_catchup": eq_final["blob"]}
    out["index_equal_before_catchup"] = eq_mail["index"]
    f.drop(a)
    return rows_per_op, files_per_op


def _standby_now(f: _Folder, m: Manifest, log_dir: Path, replay_args: list[str],
                 want: Any) -> None:
    """Fast engine, --index now (one phase)."""
    out = f.out
    f.say("standby (fast, --index now): restore and replay")
    b = f.store("standby-now")
    restore_b = _restore(m, log_dir, b)
    res_b, smp_b, wall_b = _run_sampled([str(BIN / "zmplayredo"), "--config", str(b.source),
                                         *replay_args, "--index", "now"])
    out["now_ops_per_s"] = round(res_b["ops_applied"] / res_b["seconds"])
    out["rto_now_s"] = round(restore_b + wall_b, 1)
    out["cpu_seconds_now"] = smp_b.by_kind()
    out["peak_rss_now_mb"] = round(smp_b.peak_rss_kb / 1024)
    out["digest_equal_now"] = digest_settings(b).equal(want)
    f.drop(b)


def _standby_naive(f: _Folder, m: Manifest, log_dir: Path, naive_ops: int) -> None:
    """The naive engine (one op per transaction) on a prefix of the same replay."""
    out = f.out
    n_naive = min(max(naive_ops, NAIVE_MIN_OPS), out["ops_applied"])
    f.say(f"standby (naive): restore and replay the first {n_naive} ops")
    c = f.store("standby-naive")
    _restore(m, log_dir, c)
    csite = Site.open(c)
    start = Selection(from_time=m.replay.from_time_ms, from_seq=m.replay.seq)
    nres = engine.run(csite, engine.find_logs(csite, start), start,
                      engine.EngineOptions(naive=True, limit=n_naive, index="defer"))
    out["naive_ops"] = nres.ops_applied
    out["naive_ops_per_s"] = round(nres.ops_applied / nres.seconds)
    out["speedup_mail"] = round(out["mail_ops_per_s"] / max(out["naive_ops_per_s"], 1), 1)
    f.measure()
