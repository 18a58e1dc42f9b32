"""Backup sessions (`zmbackup -f` / `-i`), standard and auto-grouped, on a running store.

A full session, as the guide's steps: the global system data (`sys/`: the global tables, a copy
of `localconfig.xml`, the whole directory); the blobs several of its accounts share, stored once;
then each account in turn — its mailbox in maintenance only while its own data is read (the
directory's exclusive gate: the change in flight finishes, new ones are refused, and a killed
backup releases it with its process) — its rows as Parquet, its blobs, its index (a SQLite
backup of a quiet database), `meta.xml` with the change number and redo sequence it was taken
at, and `ldap.xml`; an auto-grouped session then saves the archived redo logs into its own
`redologs/`. An incremental session saves the global data and every account's `ldap.xml`, rolls
the store's redo log over and saves the archived logs into `<target>/redologs/`, after a full
session for each account that has none.

Every session is written in `sessions_tmp/<label>/` and moved into `sessions/` when it ends:
`completed` (per-account errors recorded), `aborted` (zmbackupabort: the account in hand
finishes, the rest are not started), or — when the disk fills — discarded entirely. Then
`accounts.xml` records each completed account's latest full label, the database dump is taken
if `mysql_backup_retention` asks for one, and the report is written into the session and mailed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
import zipfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pymysql

from standby.classic import (
    autogroup,
    blobpack,
    dbdump,
    labels,
    localconfig,
    redo,
    report,
    sqldump,
    xmlfiles,
)
from standby.classic import target as target_mod
from standby.classic.env import Env
from standby.classic.labels import Label
from standby.classic.target import SessionDir, Target, account_relpath, is_disk_full
from standby.classic.xmlfiles import AccountEntry, AccountMeta, Session, SessionAccount
from standby.errors import (
    NotFound,
    ServiceError,
    StandbyError,
    StateConflict,
    UsageError,
    VolumeError,
)
from standby.redolog import files
from standby.store import blobs as blobmod
from standby.store import schema
from standby.store.directory import Account

SYS_TABLES = ("volume", "current_volumes", "config", "deleted_account")
INDEX_MEMBER = "index.sqlite"


@dataclass(frozen=True)
class Request:
    kind: str  # full | incr
    accounts: tuple[str, ...] | None = None  # None: all (-a all); auto-grouped: its choice
    zip_mode: str = "zipStore"
    search_index: bool | None = None  # --include/--excludeSearchIndex; None: the attribute
    blobs: bool | None = None
    hsm_blobs: bool | None = None
    label: Label | None = None  # reserved beforehand (a session run in the background)

    def __post_init__(self) -> None:
        if self.kind not in ("full", "incr"):
            raise UsageError("a backup is full (-f) or incremental (-i)")
        blobpack.check_mode(self.zip_mode)


@dataclass
class Outcome:
    sessions: list[Session] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.sessions]


class _Aborted(Exception):
    """zmbackupabort asked this session to stop."""


# ---------------------------------------------------------------------------------------------
# Entry points


def preflight(env: Env, req: Request) -> None:
    """The checks a session makes before it starts (also run before going to the background)."""
    env.target.check_usable(create=True)
    if target_mod.held(env.target.tmp_dir / target_mod.LOCK):
        raise StateConflict(f"a backup session is already running on {env.target.root}",
                            hint="`zmbackupquery` shows it; wait for it or stop it with "
                            "`zmbackupabort -lb LABEL`")
    if req.kind == "incr" and env.config.auto_grouped:
        raise UsageError("incremental backups are not used in Auto-Grouped mode: each "
                         "auto-grouped session is a full backup that keeps the redo logs",
                         hint="run `zmbackup -f`, or `zmprov mcf zimbraBackupMode Standard`")
    if req.kind == "full" and req.accounts is not None:
        resolve_accounts(env, req.accounts)
    try:
        env.target.check_min_free(env.config.min_free)
    except VolumeError as e:
        report.notify_refused(env, e.message)
        raise


def run(env: Env, req: Request) -> Outcome:
    """Run the session(s) `req` asks for, under the target's lock."""
    preflight(env, req)
    out = Outcome()
    with env.target.locked():
        if req.kind == "full":
            out.sessions.append(_full(env, req, _full_accounts(env, req)))
        else:
            lacking = _without_full(env)
            if lacking:
                out.sessions.append(_full(env, replace(req, kind="full", label=None), lacking))
            out.sessions.append(_incremental(env, req))
    for s in out.sessions:
        if s.status != "failed" and env.mysql_retention > 0:
            sqldump.dump(env, s.label)
    return out


def resolve_accounts(env: Env, names: Sequence[str]) -> list[Account]:
    d = env.site.directory
    out, missing = [], []
    for n in names:
        a = d.find(n)
        if a is None:
            missing.append(n)
        elif a.mailbox_id is not None:
            out.append(a)
    if missing:
        raise NotFound(f"no such account: {', '.join(missing)}",
                       hint="`zmprov` lists accounts in the directory; give their addresses")
    return out


def accounts_for(env: Env, req: Request) -> list[Account]:
    """The accounts the session(s) of `req` would back up in full (the dry run's answer)."""
    return _full_accounts(env, req) if req.kind == "full" else _without_full(env)


def _full_accounts(env: Env, req: Request) -> list[Account]:
    if req.accounts is not None:
        return resolve_accounts(env, req.accounts)
    everyone = [a for a in env.site.directory.accounts() if a.mailbox_id is not None]
    if not env.config.auto_grouped:
        return everyone
    last = _last_fulls(env.target)
    plan = autogroup.plan([autogroup.Candidate(a.id, last.get(a.id)) for a in everyone],
                          now_ms=env.now_ms(), interval_ms=env.config.interval_ms,
                          groups=env.config.groups, throttled=env.config.throttled)
    by_id = {a.id: a for a in everyone}
    return [by_id[i] for i in plan.accounts]


def _last_fulls(target: Target) -> dict[str, int]:
    out = {}
    for e in target.accounts():
        if e.latest_full:
            try:
                out[e.zimbra_id] = labels.parse(e.latest_full).ms
            except UsageError:
                continue
    return out


def _without_full(env: Env) -> list[Account]:
    have = {e.zimbra_id for e in env.target.accounts()
            if e.latest_full and env.target.session_dir(e.latest_full).is_dir()}
    return [a for a in env.site.directory.accounts()
            if a.mailbox_id is not None and a.id not in have]


# ---------------------------------------------------------------------------------------------
# Sessions


def _start(env: Env, kind: str, req: Request) -> tuple[SessionDir, Session]:
    label = req.label if req.label is not None and req.label.kind == kind else \
        SessionDir.reserve(env.target, kind, env.now_ms())
    sd = SessionDir(env.target, label)
    cfg = env.config
    rec = Session(
        label=str(label), type=label.type, start_ms=label.ms, status="in progress",
        server=env.server, server_id=env.settings.server_id, mode=cfg.mode,
        zip=req.zip_mode,
        skip_search_index=not req.search_index if req.search_index is not None
        else cfg.skip_search_index,
        skip_blobs=not req.blobs if req.blobs is not None else cfg.skip_blobs,
        skip_hsm_blobs=not req.hsm_blobs if req.hsm_blobs is not None else cfg.skip_hsm_blobs)
    env.log.info("backup_session_start", label=str(label))
    return sd, rec


def _end(env: Env, sd: SessionDir, rec: Session) -> Session:
    rec = replace(rec, end_ms=env.now_ms())
    report.write(sd.root, env, rec)
    sd.finish(rec)
    if rec.type == "full":
        _record_fulls(env.target, rec)
    env.log.info("backup_session_end", label=rec.label, status=rec.status)
    report.mail(env, rec)
    return rec


def _fail(env: Env, sd: SessionDir, rec: Session, e: OSError) -> VolumeError:
    sd.discard()
    msg = (f"the backup target {env.target.root} ran out of space during session {rec.label}; "
           "everything the session wrote was removed")
    report.mail(env, replace(rec, status="failed", end_ms=env.now_ms(), errors=(msg,)))
    return VolumeError(msg, hint="free space on the target or choose another one with -t")


def _record_fulls(target: Target, rec: Session) -> None:
    entries = {e.zimbra_id: e for e in target.accounts()}
    for a in rec.accounts:
        if a.status == "COMPLETED":
            entries[a.zimbra_id] = AccountEntry(a.zimbra_id, a.email, rec.label)
    target.write_accounts(list(entries.values()))


def _ended(env: Env, sd: SessionDir, box: list[Session],
           body: Callable[[], Session]) -> Session:
    """Run a session's `body` and end the session as it says; a full disk discards the
    session (VolumeError), another failure ends it as failed and is raised. `box[0]` is the
    session record as far as it got."""
    try:
        return _end(env, sd, body())
    except OSError as e:
        if is_disk_full(e):
            raise _fail(env, sd, box[0], e) from e
        _end(env, sd, replace(box[0], status="failed", errors=(*box[0].errors, str(e))))
        raise
    except StandbyError as e:
        _end(env, sd, replace(box[0], status="failed", errors=(*box[0].errors, e.message)))
        raise


def _full(env: Env, req: Request, accounts: list[Account]) -> Session:
    sd, rec = _start(env, "full", req)
    box = [replace(rec, accounts=tuple(SessionAccount(a.id, a.email, "NOTSTARTED",
                                                      a.mailbox_id) for a in accounts))]
    sd.write_progress(box[0])
    return _ended(env, sd, box, lambda: _full_body(env, req, accounts, sd, box))


def _full_body(env: Env, req: Request, accounts: list[Account], sd: SessionDir,
               box: list[Session]) -> Session:
    rec = box[0]
    done: list[SessionAccount] = []
    metas: list[AccountMeta] = []
    db = _Db(env)
    try:
        _backup_sys(env, db, sd.root)
        blobs = blobpack.SessionBlobs(sd.root, req.zip_mode)
        if not rec.skip_blobs:
            _store_shared(env, db, blobs, accounts)
        fulls = {e.zimbra_id: e.latest_full for e in env.target.accounts()}
        slots = list(rec.accounts)

        def progress(r: Session) -> None:
            sd.write_progress(r)

        def on_done(i: int, entry: SessionAccount, meta: AccountMeta | None) -> None:
            nonlocal rec
            slots[i] = entry
            done.append(entry)
            if meta is not None:
                metas.append(meta)
            rec = box[0] = replace(rec, accounts=tuple(slots))
            sd.write_progress(rec, now=time.monotonic())

        def one(db: _Db, a: Account) -> tuple[SessionAccount, AccountMeta | None]:
            prev = fulls.get(a.id)
            prev_dir = env.target.session_dir(prev) if prev else None
            return _backup_account(env, db, sd.root, blobs, a, rec, prev_dir,
                                   on_wait=partial(progress, rec))

        if not _each(env, accounts, one, on_done, stop=sd.abort_requested):
            raise _Aborted
        status = "completed"
    except _Aborted:
        status = "aborted"
    finally:
        db.close()
    logs: tuple[str, ...] = ()
    if env.config.auto_grouped and status == "completed":
        logs = _save_redologs(env, sd.root / "redologs")
    seqs = [m.redo_seq for m in metas]
    end_seq = redo.current_seq(env.redolog_dir)
    rec = replace(rec, status=status,
                  min_redo_seq=min(seqs) if seqs else end_seq,
                  max_redo_seq=end_seq, redologs=logs,
                  stats={**blobs.stats.as_dict(), "accounts": len(done),
                         "bytes": _size(sd.root)})
    return rec


def _incremental(env: Env, req: Request) -> Session:
    sd, rec = _start(env, "incr", req)
    box = [rec]
    return _ended(env, sd, box, lambda: _incremental_body(env, sd, rec))


def _incremental_body(env: Env, sd: SessionDir, rec: Session) -> Session:
    db = _Db(env)
    try:
        _backup_sys(env, db, sd.root)
    finally:
        db.close()
    entries = []
    for a in env.site.directory.accounts():
        adir = sd.root / account_relpath(a.id)
        adir.mkdir(parents=True)
        xmlfiles.write_xml(adir / "ldap.xml", xmlfiles.account_ldap_to_xml(asdict(a)),
                           durable=False)
        entries.append(SessionAccount(a.id, a.email, "COMPLETED", a.mailbox_id))
    saved = _save_redologs(env, env.target.redologs_dir)
    seqs = [q for q in (files.seq_of(n) for n in saved) if q >= 0]
    cur = redo.current_seq(env.redolog_dir)
    rec = replace(rec, status="completed", accounts=tuple(entries), redologs=saved,
                  min_redo_seq=min(seqs) if seqs else cur,
                  max_redo_seq=max(seqs) if seqs else cur,
                  stats={"redologs": len(saved), "bytes": _size(sd.root)})
    return rec


def _save_redologs(env: Env, dest: Path) -> tuple[str, ...]:
    """Roll the running store's log over, then save the archived logs into `dest`."""
    if env.rollover is not None:
        env.rollover()
    archived = files.list_archive(env.redolog_dir / files.ARCHIVE_DIR)
    have = redo.in_dir(env.target.redologs_dir)
    if dest != env.target.redologs_dir:
        have.update(redo.in_dir(dest))
    steps = redo.plan_save(archived, have, now_ms=env.now_ms(), keep_ms=env.keep_ms)
    return tuple(st.name for st in redo.save(env.redolog_dir, dest, steps))


def _size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            total += st.st_size if st.st_nlink == 1 else 0
    return total


def _each(env: Env, accounts: Sequence[Account],
          work: Callable[[_Db, Account], tuple[SessionAccount, AccountMeta | None]],
          done: Callable[[int, SessionAccount, AccountMeta | None], None], *,
          stop: Callable[[], bool]) -> bool:
    """Back up `accounts` with up to `env.workers` at a time (a connection each: most of an
    account's time is spent waiting on MariaDB and the disks), calling `done` in this thread
    as each ends; no new account starts once `stop()`; returns False if it stopped early. An
    exception in one account (a full disk) ends the run with it."""
    local = threading.local()
    opened: list[_Db] = []
    lock = threading.Lock()

    def task(i: int, a: Account) -> tuple[int, SessionAccount, AccountMeta | None]:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = _Db(env)
            with lock:
                opened.append(db)
        return (i, *work(db, a))

    todo = iter(enumerate(accounts))
    inflight: set[Future[tuple[int, SessionAccount, AccountMeta | None]]] = set()
    stopped = False
    n = max(1, min(env.workers, len(accounts)))
    try:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="backup") as pool:
            while True:
                while not stopped and len(inflight) < n:
                    if stop():
                        stopped = True
                        break
                    nxt = next(todo, None)
                    if nxt is None:
                        break
                    inflight.add(pool.submit(task, *nxt))
                if not inflight:
                    break
                finished, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                for f in finished:
                    done(*f.result())
    finally:
        for db in opened:
            db.close()
    return not stopped


# ---------------------------------------------------------------------------------------------
# The parts of a session


class _Db:
    """One connection for a whole session (a connection costs more than an account's
    queries), and the tables' columns, read once."""

    def __init__(self, env: Env) -> None:
        self.conn = env.site.connect()
        self.tables = dbdump.Tables()
        self.conn.cursor().execute("SET SESSION group_concat_max_len = 1073741824")

    def close(self) -> None:
        self.conn.close()


def _backup_sys(env: Env, db: _Db, root: Path) -> None:
    d = root / "sys"
    (d / "db").mkdir(parents=True)
    try:
        cur = db.conn.cursor()
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        dumps = [dbdump.dump(cur, d / "db", schema.ZIMBRA_DB, t, tables=db.tables)
                 for t in SYS_TABLES]
        db.conn.commit()
    except pymysql.err.Error as e:
        raise ServiceError(f"cannot read the global tables: {e.args[-1] if e.args else e}") \
            from e
    dbdump.write_schema(d / "db", dumps)
    lc = localconfig.path(env.settings.state_dir)
    if lc.is_file():
        shutil.copyfile(lc, d / localconfig.FILE)
    xmlfiles.write_xml(d / "ldap.xml", xmlfiles.directory_to_xml(env.site.directory.export()),
                      durable=False)


def _store_shared(env: Env, db: _Db, blobs: blobpack.SessionBlobs,
                  accounts: list[Account]) -> None:
    """Store once the blobs more than one of the session's mailboxes holds."""
    holders: dict[str, dict[int, Path]] = {}
    groups: dict[str, list[int]] = {}
    for a in accounts:
        assert a.mailbox_id is not None
        groups.setdefault(schema.group_db(a.mailbox_id, env.site.groups), []).append(
            a.mailbox_id)
    cur = db.conn.cursor()
    cols = tuple(dbdump.Column(c, "int", False) for c in ("mailbox_id", "id", "mod_content")) \
        + (dbdump.Column("blob_digest", "varchar", True),)
    for g, ids in groups.items():
        marks = ",".join(["%s"] * len(ids))
        rows = dbdump.select(cur, cols, f"{g}.mail_item",
                             f"mailbox_id IN ({marks}) AND blob_digest IS NOT NULL", ids)
        for m, item, mod, dg in rows:
            holders.setdefault(dg, {}).setdefault(m, env.site.blobs.path(m, item, mod))
    db.conn.commit()
    shared = [(dg, list(by_m.values())) for dg, by_m in holders.items() if len(by_m) > 1]
    previous = _latest_full_dir(env.target)
    blobs.store_shared(sorted(shared), previous)


def _latest_full_dir(target: Target) -> Path | None:
    fulls = [i for i in target.sessions() if i.finished and i.label.kind == "full"]
    return fulls[-1].path if fulls else None


def _backup_account(env: Env, db: _Db, root: Path, blobs: blobpack.SessionBlobs, a: Account,
                    rec: Session, prev_session: Path | None, *,
                    on_wait: Callable[[], None] | None = None
                    ) -> tuple[SessionAccount, AccountMeta | None]:
    """One account, its mailbox in maintenance while its data is read."""
    assert a.mailbox_id is not None
    m = a.mailbox_id
    rel = account_relpath(a.id)
    adir = root / rel
    log = env.log.bind(account=a.email, mailbox=m)
    try:
        # Someone else holds the mailbox (a restore): show the progress so far while waiting.
        with env.site.directory.maintenance(m, on_wait=on_wait):
            start = env.now_ms()
            seq = redo.current_seq(env.redolog_dir)
            (adir / "db").mkdir(parents=True, exist_ok=True)
            change, digests = _dump_rows(env, db, adir / "db", m)
            refs: list[blobpack.BlobRef] = []
            k = 1
            if not rec.skip_blobs:
                files = _blob_files(env, m, digests)
                refs, k = blobs.store_account(str(rel), files, prev_session)
                blobpack.write_manifest(adir / "blobs", refs)
            index = "none"
            if not rec.skip_search_index:
                index = _backup_index(env, m, adir / "index", rec.zip)
            end = env.now_ms()
        meta = AccountMeta(a.id, a.email, m, change, start, end, seq if seq is not None else 0,
                           blobs=len(refs), blob_bytes=sum(r.size for r in refs),
                           blob_buckets=k, index=index, zip=rec.zip,
                           skip_blobs=rec.skip_blobs, skip_search_index=rec.skip_search_index)
        xmlfiles.write_xml(adir / "meta.xml", xmlfiles.meta_to_xml(meta), durable=False)
        xmlfiles.write_xml(adir / "ldap.xml", xmlfiles.account_ldap_to_xml(asdict(a)),
                           durable=False)
        log.info("backup_account_done", blobs=len(refs), change=change)
        return SessionAccount(a.id, a.email, "COMPLETED", m), meta
    except OSError as e:
        if is_disk_full(e):
            raise
        return _account_error(log, a, f"{e.strerror or e}: {e.filename or ''}".strip(": ")), None
    except (StandbyError, pymysql.err.Error, sqlite3.Error, zipfile.BadZipFile) as e:
        return _account_error(log, a, str(e)), None


def _account_error(log: Any, a: Account, msg: str) -> SessionAccount:
    log.warning("backup_account_failed", error=msg)
    return SessionAccount(a.id, a.email, "ERROR", a.mailbox_id, msg)


def _dump_rows(env: Env, db: _Db, out: Path,
               m: int) -> tuple[int, dict[tuple[int, int], str]]:
    """The mailbox's rows as Parquet; its change number and its blobs' digests."""
    g = schema.group_db(m, env.site.groups)
    conn, tables = db.conn, db.tables
    try:
        cur = conn.cursor()
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute("SELECT change_checkpoint FROM zimbra.mailbox WHERE id = %s", (m,))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"mailbox {m} does not exist in the database")
        dumps = [dbdump.dump(cur, out, schema.ZIMBRA_DB, "mailbox", where="id = %s", args=(m,),
                             tables=tables)]
        digests: dict[tuple[int, int], str] = {}
        for t in schema.GROUP_TABLE_COLUMNS:
            d = dbdump.dump(cur, out, g, t, where="mailbox_id = %s", args=(m,), tables=tables)
            dumps.append(d)
            key = {"mail_item": "id", "revision": "item_id"}.get(t)
            if key is not None and d.rows:  # the blobs' digests, from the rows just read
                c = d.column_values
                digests.update({(i, mc): dg for i, mc, dg in zip(
                    c[key], c["mod_content"], c["blob_digest"]) if dg is not None})
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    dbdump.write_schema(out, dumps)
    return int(row[0]), digests


def _blob_files(env: Env, m: int, digests: dict[tuple[int, int], str]) -> list[blobpack.BlobFile]:
    base = str(env.site.blobs.mailbox_dir(m))
    out = []
    for folder, names in env.site.blobs.mailbox_blob_names(m):
        rel_folder = os.path.relpath(folder, base)
        for n in sorted(names):
            p = os.path.join(folder, n)
            key = blobmod.parse_blob_name(n)
            dg = digests.get(key) if key else None
            if dg is None:  # a blob no row names a digest for: name it by its content
                dg = blobmod.digest(env.site.blobs.read(Path(p)))
            out.append(blobpack.BlobFile(f"{rel_folder}/{n}", p, dg, os.stat(p).st_size))
    return out


def _backup_index(env: Env, m: int, out: Path, zip_mode: str) -> str:
    src_path = env.site.index.path(m)
    if not src_path.exists():
        return "none"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{INDEX_MEMBER}.tmp"
    src = sqlite3.connect(src_path)
    try:
        dst = sqlite3.connect(tmp)
        try:
            dst.execute("PRAGMA synchronous=OFF")  # the session is synced as a whole
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    if zip_mode == "noZip":
        os.replace(tmp, out / INDEX_MEMBER)
        return "file"
    comp = zipfile.ZIP_STORED if zip_mode == "zipStore" else zipfile.ZIP_DEFLATED
    ztmp = out / ".index.zip.tmp"
    with zipfile.ZipFile(ztmp, "w", compression=comp, allowZip64=True) as z:
        z.write(tmp, INDEX_MEMBER)
    tmp.unlink()
    os.replace(ztmp, out / "index.zip")
    return "zip"
