"""The parts of a backup session: the global system data, the blobs several accounts share,
and one account — its mailbox in maintenance while its rows, blobs and index are read — and
the runner that backs up several accounts at a time.

Invariant: an account's data is read only while its mailbox is held in maintenance (the
directory's exclusive gate), so its rows, blobs and index are one consistent state, at the
change number and redo sequence its `meta.xml` records.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pymysql

from standby.classic import blobpack, dbdump, localconfig, pool, redo, xmlfiles
from standby.classic.env import Env
from standby.classic.target import Target, account_relpath, is_disk_full
from standby.classic.xmlfiles import AccountMeta, Session, SessionAccount
from standby.errors import NotFound, ServiceError, StandbyError
from standby.store import blobs as blobmod
from standby.store import schema
from standby.store.directory import Account

SYS_TABLES = ("volume", "current_volumes", "config", "deleted_account")
MAILBOX_TABLES = ("mailbox_metadata",)  # the global tables' rows of one mailbox, beside its own
INDEX_MEMBER = "index.sqlite"
IMAGE_MAX = 128 * 1024 * 1024  # an index larger than this is backed up through a file
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Backed:
    """What backing up one account gives its session: the account's entry, its meta.xml
    (None when it failed) and what it stored of its blobs."""

    entry: SessionAccount
    meta: AccountMeta | None
    blobs: blobpack.BlobStats


Work = Callable[["Db", Account, Session], Backed]
Run = Callable[..., bool]


@contextmanager
def workers(env: Env, count: int, work: Work) -> Iterator[Run]:
    """A runner that backs up accounts with up to `env.workers` at a time (worker processes,
    forked here: start the session's other threads inside the block), each with a connection
    of its own. `run(accounts, done, stop=, current=)` calls `work(db, account, current())`
    for each, `done(i, backed)` here as each ends; no new account starts once `stop()`; it
    returns False if it stopped early. An exception in one account (a full disk) ends the
    run with it."""
    def one(db: Db, job: tuple[int, Account, Session]) -> Backed:
        return work(db, job[1], job[2])

    with pool.started(one, workers=min(env.workers, count), open_context=lambda: Db(env),
                      close_context=Db.close) as each:

        def run(accounts: Sequence[Account], done: Callable[[int, Backed], None], *,
                stop: Callable[[], bool], current: Callable[[], Session]) -> bool:
            stopped = False

            def todo() -> Iterator[tuple[int, Account, Session]]:
                nonlocal stopped
                for i, a in enumerate(accounts):
                    if stop():
                        stopped = True
                        return
                    yield i, a, current()

            each(todo(), lambda job, backed: done(job[0], backed))
            return not stopped

        yield run


class Db:
    """One connection for a whole session (a connection costs more than an account's
    queries), and the tables' columns, read once."""

    def __init__(self, env: Env) -> None:
        self.conn = env.site.connect()
        self.tables = dbdump.Tables()
        self.conn.cursor().execute("SET SESSION group_concat_max_len = 1073741824")

    def close(self) -> None:
        self.conn.close()


def backup_sys(env: Env, db: Db, root: Path) -> None:
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


def store_shared(env: Env, db: Db, blobs: blobpack.SessionBlobs,
                  accounts: list[Account]) -> Callable[[], int]:
    """Store once the blobs more than one of the session's mailboxes holds: chosen now,
    written by the returned call (`SessionBlobs.store_shared`)."""
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
    previous = latest_full_dir(env.target)
    return blobs.store_shared(sorted(shared), previous)


def latest_full_dir(target: Target) -> Path | None:
    fulls = [i for i in target.sessions() if i.finished and i.label.kind == "full"]
    return fulls[-1].path if fulls else None


def backup_account(env: Env, db: Db, root: Path, blobs: blobpack.SessionBlobs, a: Account,
                    rec: Session, prev_session: Path | None, *,
                    on_wait: Callable[[], None] | None = None) -> Backed:
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
            change, digests = dump_rows(env, db, adir / "db", m)
            refs: list[blobpack.BlobRef] = []
            k = 1
            stored = blobpack.BlobStats()
            if not rec.skip_blobs:
                files = blob_files(env, m, digests)
                refs, k, stored = blobs.store_account(str(rel), files, prev_session)
                blobpack.write_manifest(adir / "blobs", refs)
            index = "none"
            if not rec.skip_search_index:
                index = backup_index(env, m, adir / "index", rec.zip)
            end = env.now_ms()
        meta = AccountMeta(a.id, a.email, m, change, start, end, seq if seq is not None else 0,
                           blobs=len(refs), blob_bytes=sum(r.size for r in refs),
                           blob_buckets=k, index=index, zip=rec.zip,
                           skip_blobs=rec.skip_blobs, skip_search_index=rec.skip_search_index)
        xmlfiles.write_xml(adir / "meta.xml", xmlfiles.meta_to_xml(meta), durable=False)
        xmlfiles.write_xml(adir / "ldap.xml", xmlfiles.account_ldap_to_xml(asdict(a)),
                           durable=False)
        log.info("backup_account_done", blobs=len(refs), change=change)
        return Backed(SessionAccount(a.id, a.email, "COMPLETED", m), meta, stored)
    except OSError as e:
        if is_disk_full(e):
            raise
        return _account_error(log, a, f"{e.strerror or e}: {e.filename or ''}".strip(": "))
    except (StandbyError, pymysql.err.Error, sqlite3.Error, zipfile.BadZipFile) as e:
        return _account_error(log, a, str(e))


def _account_error(log: Any, a: Account, msg: str) -> Backed:
    log.warning("backup_account_failed", error=msg)
    return Backed(SessionAccount(a.id, a.email, "ERROR", a.mailbox_id, msg), None,
                  blobpack.BlobStats())


def dump_rows(env: Env, db: Db, out: Path,
               m: int) -> tuple[int, dict[tuple[int, int], str]]:
    """The mailbox's rows as Parquet, read by one statement (`dbdump.dump_many`: one read
    view, and one round trip per account); its change number and its blobs' digests."""
    g = schema.group_db(m, env.site.groups)
    parts = [dbdump.Part(schema.ZIMBRA_DB, "mailbox", "id = %s", (m,))] + [
        dbdump.Part(schema.ZIMBRA_DB, t, "mailbox_id = %s", (m,)) for t in MAILBOX_TABLES] + [
        dbdump.Part(g, t, "mailbox_id = %s", (m,)) for t in schema.GROUP_TABLE_COLUMNS]
    try:
        dumps = dbdump.dump_many(db.conn.cursor(), out, parts, tables=db.tables)
    finally:
        db.conn.rollback()  # a part read on its own opened a transaction: end it
    box = dumps[0]
    if not box.rows:
        raise NotFound(f"mailbox {m} does not exist in the database")
    digests: dict[tuple[int, int], str] = {}
    for d in dumps[1:]:
        key = {"mail_item": "id", "revision": "item_id"}.get(d.table)
        if key is not None and d.rows:  # the blobs' digests, from the rows just read
            c = d.column_values
            digests.update({(i, mc): dg for i, mc, dg in zip(
                c[key], c["mod_content"], c["blob_digest"]) if dg is not None})
    dbdump.write_schema(out, dumps)
    return int(box.column_values["change_checkpoint"][0]), digests


def blob_files(env: Env, m: int, digests: dict[tuple[int, int], str]) -> list[blobpack.BlobFile]:
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


def backup_index(env: Env, m: int, out: Path, zip_mode: str) -> str:
    """The mailbox's index, read through SQLite (the store may have it open, in WAL mode):
    serialized in memory and written once into its container when it is small enough (most
    are), else backed up into a file first."""
    src_path = env.site.index.path(m)
    if not src_path.exists():
        return "none"
    out.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(src_path)
    try:
        data = index_image(src)
        if data is None:
            tmp = out / f".{INDEX_MEMBER}.tmp"
            dst = sqlite3.connect(tmp)
            try:
                dst.execute("PRAGMA synchronous=OFF")  # the session is synced as a whole
                src.backup(dst)
            finally:
                dst.close()
    finally:
        src.close()
    if zip_mode == "noZip":
        if data is None:
            os.replace(tmp, out / INDEX_MEMBER)
        else:
            (out / INDEX_MEMBER).write_bytes(data)
        return "file"
    info = zipfile.ZipInfo(INDEX_MEMBER, date_time=blobpack.ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED if zip_mode == "zipStore" else zipfile.ZIP_DEFLATED
    ztmp = out / ".index.zip.tmp"
    with zipfile.ZipFile(ztmp, "w", allowZip64=True) as z:
        if data is not None:
            z.writestr(info, data)
        else:
            with open(tmp, "rb") as f, z.open(info, "w", force_zip64=True) as w:
                shutil.copyfileobj(f, w, COPY_CHUNK)
            tmp.unlink()
    os.replace(ztmp, out / "index.zip")
    return "zip"


def index_image(conn: sqlite3.Connection) -> bytes | None:
    """The database of `conn` as the bytes of a database file (its WAL's pages included,
    marked as a rollback-journal file, which needs no WAL beside it), or None when larger
    than `IMAGE_MAX` (not held in memory)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    if pages * size > IMAGE_MAX:
        return None
    data = bytearray(conn.serialize())
    if len(data) >= 20 and data[18:20] == b"\x02\x02":  # file format versions: WAL
        data[18:20] = b"\x01\x01"
    return bytes(data)
