"""`standby bench replay --ops N`: the replay engines and the machine's ceiling, side by side.

1. A log of N ops with loadgen's default mix (or, `mix="core"`, its core alone: the op kinds of
   the mix before Zimbra's other mail ops joined it, to compare with older code): from a running primary (loadgen through the store
   service) when N is small, else written directly by the redo writer with the same mix
   (`bench.synth`).
2. The fast engine replays it from empty into a fresh store: `ops_per_s`, peak RSS.
3. The naive engine replays a prefix (at least 50k ops, or all) into another fresh store:
   `naive_ops_per_s`; the fast engine replays the same prefix into a third store and the two
   digests are compared (`digest_equal`; with a primary, its digest too).
4. The ceiling, measured now on this machine: LOAD DATA rows/s into the same schema and
   small-file creates/s on the blob volume, combined for the rows and files per op this mix
   needs (`ceiling_ops_per_s`, `ratio_to_ceiling`).
5. Where the CPU went: CPU seconds of the main process, the workers and mariadbd during the
   fast run (`cpu_seconds`), and the cost of the full-text work alone — MIME parsing and an FTS5
   insert per message, timed on messages of this log (`index_cost_us`). `cpu_bound_ops_per_s`
   is the rate the cores would allow if they did nothing but that index work and mariadbd's
   measured share: an upper bound for any engine that indexes inline on this machine.
With `index="defer"` every replay is phase one of a failover (db and blob forward, documents
left pending): the fast and naive runs and the prefix comparison all defer, both prefix stores
are caught up (`replay.catchup`) before their digests are compared, and `index_cost_us` /
`cpu_bound_ops_per_s` (the inline index's cost) are not measured. `standby bench failover` is
the whole failover, with the catch-up measured.
Everything is created under a temporary work folder and removed at the end.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from standby import settings as settings_mod
from standby.bench import synth
from standby.bench.workdir import drop_volumes, folder_bytes, work_folder
from standby.errors import UsageError
from standby.replay import DEFAULT_CHUNK_OPS, catchup, engine
from standby.replay.bulk import TSV_ENGINE
from standby.replay.player import Selection
from standby.settings import (
    MariaDBSettings,
    Settings,
    SnapshotSettings,
    StoreSettings,
    Volumes,
    VolumeSettings,
)
from standby.store import control
from standby.store.digest import digest_settings
from standby.store.index import IndexMode
from standby.store.site import Site

PRIMARY_MAX_OPS = 20_000
NAIVE_MIN_OPS = 50_000


def make_store(root: Path, *, groups: int = 100, buffer_pool: str = "1G",
               server_id: str | None = None, manifest_key: str | None = None) -> Settings:
    """A fresh store folder with a config tuned for bulk work; returns its settings (with a
    manifest key, written into its config, when one is given: snapshot sets need it)."""
    root.mkdir(parents=True)
    for n in settings_mod.VOLUME_NAMES:
        (root / n).mkdir()
    s = Settings(server_id=server_id or str(uuid.uuid4()), state_dir=root / "state",
                 volumes=Volumes(**{n: VolumeSettings(path=root / n)
                                    for n in settings_mod.VOLUME_NAMES}),
                 mariadb=MariaDBSettings(buffer_pool=buffer_pool, log_file_size="512M"),
                 store=StoreSettings(mailbox_groups=groups),
                 snapshot=SnapshotSettings(manifest_key=manifest_key))
    cfg = root / "standby.toml"
    cfg.write_text(settings_mod.to_toml(s, include_secrets=manifest_key is not None))
    return settings_mod.load(cfg)


def _rss_mb() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def ceiling(s: Settings, *, rows: int = 200_000, files: int = 20_000,
            file_size: int = 8192) -> dict[str, float]:
    """LOAD DATA rows/s into mail_item and file creates/s on the blob volume, measured now."""
    from standby.replay.model import MailboxModel

    site = Site(s)
    db = site.db
    db.start()
    try:
        site.ensure_schema()
        conn = db.connect()
        # Rows shaped like delivered messages, spread over mailboxes as the mix spreads them.
        sample: list[list[Any]] = []
        rng = random.Random(7)
        mm = MailboxModel(1, exists=False, hwm=0, item_ckpt=0, account_id=None,
                          deleted_before=False, source=None,  # type: ignore[arg-type]
                          fields_for=lambda i: None)  # type: ignore[arg-type,return-value]
        base = mm._new_row()
        for i in range(rows):
            r = list(base)
            m = 1 + i % 200
            r[0], r[1], r[2], r[4] = m, 1000 + i, 5, 2
            r[6] = r[7] = 1000 + i
            r[8], r[9], r[10] = 1_700_000_000 + i, rng.randint(2000, 60000), "1"
            r[11] = "%044x" % rng.getrandbits(176)
            r[12], r[13] = 1, 0
            r[16] = f"sender{i % 977}@example.com"
            r[17] = f"user{m:05d}@example.com"
            r[18] = "A subject line of ordinary length for message %d" % i
            r[21] = r[23] = 2 + i // 200
            r[22] = 1_700_000_000 + i
            sample.append(r)
        # The machine's part only: the files are prepared first, then LOAD DATA is timed (one
        # statement per mboxgroup table, as the fast engine loads them).
        from standby.replay.bulk import tsv
        from standby.store.schema import MAIL_ITEM_COLUMNS, group_of

        by_group: dict[int, list[list[Any]]] = {}
        for r in sample:
            by_group.setdefault(group_of(r[0], s.store.mailbox_groups), []).append(r)
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
        prepared = []
        for g, rs in sorted(by_group.items()):
            f = shm / f"standby-ceiling-{os.getpid()}-{g}.tsv"
            f.write_text(tsv(rs), encoding="utf-8")
            prepared.append((g, f))
        cur = conn.cursor()
        t0 = time.perf_counter()
        try:
            for g, f in prepared:
                cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE mboxgroup{g}.mail_item"
                            " CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY"
                            f" '\\\\' LINES TERMINATED BY '\\n' ({', '.join(MAIL_ITEM_COLUMNS)})",
                            (str(f),))
            conn.commit()
            load_rate = rows / (time.perf_counter() - t0)
        finally:
            for _g, f in prepared:
                f.unlink(missing_ok=True)
        conn.close()
    finally:
        db.stop()
    d = s.volumes.blob.path / "ceiling"
    file_rate = file_create_rate(d, files=files, file_size=file_size)
    shutil.rmtree(d)
    return {"load_data_rows_per_s": round(load_rate), "file_creates_per_s": round(file_rate)}


def ops_ceiling(rows_per_op: float, files_per_op: float, load_rows_per_s: float,
                file_creates_per_s: float) -> int | None:
    """Ops/s if an op cost nothing but its rows' LOAD DATA and its files' creation, at the
    measured rates (None when the ops leave neither)."""
    cost = rows_per_op / load_rows_per_s + files_per_op / file_creates_per_s
    return round(1 / cost) if cost else None


def file_create_rate(d: Path, *, files: int = 20_000, file_size: int = 8192) -> float:
    """Files of `file_size` bytes created per second under `d` (256 folders), one thread; the
    files are left for the caller to remove (a removal just before another measurement would
    slow it: ext4 skips recently freed inodes)."""
    payload = os.urandom(file_size)
    t0 = time.perf_counter()
    for i in range(files):
        sub = d / str(i % 256)
        if i < 256:
            sub.mkdir(parents=True)
        fd = os.open(sub / f"{i}.msg", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, payload)
        os.close(fd)
    return files / (time.perf_counter() - t0)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rusage_cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def index_cost(log_dir: Path, *, messages: int = 2000, batch: int = 75) -> dict[str, float]:
    """Microseconds per message of MIME parsing and of an FTS5 insert, on this log's messages.

    The documents go into one fresh mailbox index in transactions of `batch` (pass what a
    mailbox gets per chunk of the fast engine, as the engine's inserts are batched that way).
    A fresh index merges less than a grown one, so this is a low estimate of the real cost."""
    from standby.redolog.ops import CreateMessage
    from standby.replay.player import Player, select_files
    from standby.store.index import MailboxIndex
    from standby.store.mime import message_fields

    raws: list[bytes] = []
    logs, _ = select_files(log_dir, Selection())
    for rec, _p in Player(Selection()).play(logs):
        op = rec.op
        if isinstance(op, CreateMessage) and op.data and len(op.data) == op.msg_size:
            raws.append(bytes(op.data))
            if len(raws) >= messages:
                break
    if not raws:
        return {}
    t0 = time.perf_counter()
    fields = [message_fields(r) for r in raws]
    mime_s = time.perf_counter() - t0
    d = Path(tempfile.mkdtemp(prefix="standby-index-cost-"))
    try:
        idx = MailboxIndex(d / "index.sqlite")
        t0 = time.perf_counter()
        for i in range(0, len(fields), batch):
            # As a worker writes a chunk: the items rows, then the documents in one statement.
            idx.begin()
            part = list(enumerate(fields[i:i + batch], start=i + 1000))
            idx.db.executemany("INSERT INTO items (id, type, folder_id, mod_content) VALUES"
                               " (?, 5, 2, ?)", [(j, j) for j, _f in part])
            idx.db.executemany("INSERT INTO docs (rowid, subject, sender, recipients, body)"
                               " VALUES (?, ?, ?, ?, ?)",
                               [(j, f.subject, f.sender, f.recipients, f.text) for j, f in part])
            idx.commit()
        fts_s = time.perf_counter() - t0
        idx.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"mime_parse": round(mime_s / len(raws) * 1e6, 1),
            "fts_insert": round(fts_s / len(raws) * 1e6, 1), "messages": len(raws)}


def _replay(s: Settings, log_dir: Path, *, naive: bool, limit: int | None,
            batch_ops: int = DEFAULT_CHUNK_OPS, index: IndexMode = "now") -> Any:
    site = Site.open(s)
    every = Selection()
    opts = engine.EngineOptions(naive=naive, limit=limit, threads=os.cpu_count() or 2,
                                batch_ops=batch_ops, index=index)
    return engine.run(site, engine.find_logs(site, every, log_dir=log_dir), every, opts)


def _caught_up_digest(s: Settings) -> Any:
    """The store's digest after phase two (nothing to do after a one-phase replay)."""
    site = Site.open(s)
    if site.index.marked_behind():
        catchup.run(site)
    return digest_settings(s)


# The work folder at its fullest (measured: `work_folder_peak_gb`, right after the whole log's
# replay): per op the log and the fast store's volumes, and the MariaDB servers' files (the naive
# and prefix stores, made after the fast store's volumes are gone, hold a prefix only).
DISK_FIXED_BYTES = 5 * (700 << 20)
DISK_BYTES_PER_OP = 18_000


def disk_estimate(ops: int) -> int:
    return DISK_FIXED_BYTES + DISK_BYTES_PER_OP * ops


def run(*, ops: int, workdir: Path | None = None, seed: int = 1, accounts: int = 500,
        naive_ops: int = NAIVE_MIN_OPS, keep: bool = False,
        batch_ops: int = DEFAULT_CHUNK_OPS, index: IndexMode = "now", mix: str = "default",
        say: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    if mix not in synth.MIXES:
        raise UsageError(f"no synthetic mix {mix!r}", hint="one of " + ", ".join(synth.MIXES))
    out: dict[str, Any] = {"ops": ops, "batch_ops": batch_ops, "index": index, "mix": mix,
                           "tsv_engine": TSV_ENGINE}
    need = disk_estimate(ops)
    out["disk_estimate_gb"] = round(need / 2**30, 1)
    with work_folder("standby-bench-replay-", workdir=workdir, need_bytes=need, keep=keep,
                     say=say) as base:
        primary_digest = None
        if ops <= PRIMARY_MAX_OPS:
            say(f"primary: loadgen until {ops} redo ops")
            ps = make_store(base / "primary")
            control.start(ps)
            from standby.store import loadgen

            accounts = min(accounts, 50)
            loadgen.run(ps.store_socket, accounts=accounts, ops=ops, seed=seed,
                        workers=4, mix=synth.MIXES[mix])
            control.stop(ps)
            primary_digest = digest_settings(ps).total
            log_dir = ps.volumes.redolog.path
            out["source"] = "primary"
        else:
            say(f"writing a synthetic log of {ops} ops")
            log_dir = base / "log"
            t0 = time.perf_counter()
            synth.write_log(log_dir, ops=ops, accounts=accounts, seed=seed, mix=mix)
            out["source"] = "synthetic"
            out["log_write_seconds"] = round(time.perf_counter() - t0, 1)
        out["log_bytes"] = sum(p.stat().st_size for p in log_dir.rglob("*.log"))
        out["log_files"] = len(list(log_dir.rglob("*.log")))

        say("fast engine, whole log")
        fs = make_store(base / "fast")
        fdb = Site(fs).db
        db_pid = fdb.start()  # started here, so its CPU time can be read before it stops
        rss0 = _rss_mb()
        cpu0 = (_rusage_cpu_s(resource.RUSAGE_SELF), _rusage_cpu_s(resource.RUSAGE_CHILDREN),
                proc_cpu_s(db_pid))
        res = _replay(fs, log_dir, naive=False, limit=None, batch_ops=batch_ops, index=index)
        cpu = {"main": _rusage_cpu_s(resource.RUSAGE_SELF) - cpu0[0],
               "workers": _rusage_cpu_s(resource.RUSAGE_CHILDREN) - cpu0[1],
               "mariadbd": proc_cpu_s(db_pid) - cpu0[2]}
        fdb.stop()
        me, kids = _rss_mb()
        out["ops_applied"] = res.ops_applied
        out["ops_per_s"] = round(res.ops_applied / res.seconds)
        out["seconds"] = round(res.seconds, 2)
        out["fast_summary"] = {k: v for k, v in res.as_dict().items()
                               if k in ("db", "blob", "index", "worker_seconds",
                                        "worker_cpu_seconds", "messages_parsed", "errors",
                                        "phases")}
        workers = os.cpu_count() or 2
        out["peak_rss_mb"] = round(me + kids * workers)
        out["peak_rss_main_mb"] = round(me)
        out["peak_rss_worker_mb"] = round(kids)
        out["rss_before_mb"] = round(rss0[0])
        if primary_digest is not None:
            out["digest_equal_primary"] = _caught_up_digest(fs).total == primary_digest
        cores = os.cpu_count() or 2
        out["cpu_seconds"] = {k: round(v, 1) for k, v in cpu.items()}
        out["cpu_busy_ratio"] = round(sum(cpu.values()) / (res.seconds * cores), 2)
        chunks = -(-res.ops_applied // batch_ops)
        per_mailbox = res.documents / max(1, accounts * chunks)  # documents per transaction
        icost = {}
        if index == "now":
            say("index cost per message")
            icost = index_cost(log_dir, batch=max(1, round(per_mailbox)))
        if icost:
            icost["batch"] = max(1, round(per_mailbox))
            n = max(res.ops_applied, 1)
            index_us = (res.parsed / n * icost["mime_parse"] + res.documents / n *
                        icost["fts_insert"])
            db_us = cpu["mariadbd"] / n * 1e6
            out["index_cost_us"] = icost
            out["documents_per_op"] = round(res.documents / n, 3)
            out["cpu_bound_ops_per_s"] = round(cores * 1e6 / (index_us + db_us))
        rows_per_op = res.rows_loaded / max(res.ops_applied, 1)
        files_per_op = res.blob.get("written", 0) / max(res.ops_applied, 1)
        # The whole log's store is done with: its volumes go (the disk is shared), and the
        # next runs wait for the file system to settle (`workdir.SETTLE_S`: on ext4 without a
        # journal the removal still slows the naive run's blob creates for minutes after).
        out["work_folder_peak_gb"] = round(folder_bytes(base) / 2**30, 2)
        drop_volumes(fs, ("db", "blob", "index"), say)

        n_naive = min(max(naive_ops, NAIVE_MIN_OPS), res.ops_applied)
        say(f"naive engine, first {n_naive} ops")
        ns = make_store(base / "naive")
        nres = _replay(ns, log_dir, naive=True, limit=n_naive, index=index)
        out["naive_ops"] = nres.ops_applied
        out["naive_ops_per_s"] = round(nres.ops_applied / nres.seconds)
        say(f"fast engine, first {n_naive} ops")
        fps = make_store(base / "fast-prefix")
        _replay(fps, log_dir, naive=False, limit=n_naive, batch_ops=batch_ops, index=index)
        mail_naive, mail_fast = digest_settings(ns), digest_settings(fps)  # before any catch-up
        d_naive = _caught_up_digest(ns)
        d_fast = _caught_up_digest(fps)
        out["digest_equal_volumes"] = d_fast.equal(d_naive)
        out["digest_equal_mail_before_catchup"] = all(
            mail_fast.equal(mail_naive)[v] for v in ("db", "blob"))
        out["digest_equal"] = d_naive.total == d_fast.total and \
            out["digest_equal_mail_before_catchup"] and out.get("digest_equal_primary", True)
        out["speedup"] = round(out["ops_per_s"] / max(out["naive_ops_per_s"], 1), 1)

        say("ceiling")
        cs = make_store(base / "ceiling")
        c = ceiling(cs)
        out.update(c)
        out["rows_per_op"] = round(rows_per_op, 3)
        out["files_per_op"] = round(files_per_op, 3)
        out["ceiling_ops_per_s"] = ops_ceiling(rows_per_op, files_per_op,
                                               c["load_data_rows_per_s"],
                                               c["file_creates_per_s"])
        out["ratio_to_ceiling"] = round(out["ops_per_s"] / out["ceiling_ops_per_s"], 3) \
            if out["ceiling_ops_per_s"] else None
        out["work_folder_gb"] = round(folder_bytes(base) / 2**30, 2)
        return out
