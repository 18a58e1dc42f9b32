"""Putting one account's full backup into a store, and the system data back.

`load` does the guide's first restore steps for one mailbox: its data on the server deleted (the
rows, the blob files — their folders stay, a running store remembers them — and the index
contents), then its backup loaded: rows from Parquet with LOAD DATA (into another mailbox id
when it is restored elsewhere), blobs copied out of their containers, the index put back through
SQLite (a running store may have it open) or left empty and marked for reindexing.
`restore_sys` is `-sys`: localconfig.xml as localconfig.xml.restore, and, offline, the global
tables merged in. The caller holds the mailbox in maintenance and replays the logs afterwards.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import zipfile
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from standby.classic import blobpack, dbdump, localconfig
from standby.classic.accounts import IMAGE_MAX, INDEX_MEMBER, MAILBOX_TABLES
from standby.classic.env import Env
from standby.classic.target import SessionInfo, account_relpath
from standby.classic.xmlfiles import AccountMeta
from standby.errors import FormatError, ServiceError
from standby.store import schema
from standby.store.index import MailboxIndex


@dataclass(frozen=True)
class Step:
    """One account of a restore: where its data comes from and where it goes."""

    email: str
    zimbra_id: str
    session: SessionInfo
    meta: AccountMeta
    ldap: dict[str, Any]

    @property
    def account_dir(self) -> Path:
        return self.session.path / account_relpath(self.zimbra_id)



def new_mailbox_id(conn: Any) -> int:
    cur = conn.cursor()
    cur.execute("SELECT next_mailbox_id FROM zimbra.current_volumes FOR UPDATE")
    m = int(cur.fetchone()[0])
    cur.execute("UPDATE zimbra.current_volumes SET next_mailbox_id = %s", (m + 1,))
    conn.commit()
    return m


def load(env: Env, conn: Any, containers: blobpack.Containers, step: Step, m: int,
         account_id: str, *, blobs: bool = True, search_index: bool = True) -> None:
    """Delete the mailbox's data on the server and load its full backup into it."""
    site = env.site
    src = step.meta.mailbox_id
    g_src = source_group(step)
    g_dst = schema.group_db(m, site.groups)
    moved = m != src or account_id != step.zimbra_id
    db_dir = step.account_dir / "db"
    try:
        cur = conn.cursor()
        for t in ("tagged_item", "tag", "tombstone", "revision", "mail_item"):
            cur.execute(f"DELETE FROM {g_dst}.{t} WHERE mailbox_id = %s", (m,))
        for t in MAILBOX_TABLES:
            cur.execute(f"DELETE FROM zimbra.{t} WHERE mailbox_id = %s", (m,))
        cur.execute("DELETE FROM zimbra.mailbox WHERE id = %s", (m,))
        cur.execute("DELETE FROM zimbra.deleted_account WHERE mailbox_id = %s", (m,))
        dbdump.load(cur, db_dir, schema.ZIMBRA_DB, "mailbox", override={
            "id": m, "group_id": schema.group_of(m, site.groups), "account_id": account_id})
        rows = {(d.database, d.table): d.rows for d in dbdump.read_schema(db_dir)}
        for t in MAILBOX_TABLES:  # absent from a backup taken before they were saved
            if rows.get((schema.ZIMBRA_DB, t)):
                dbdump.load(cur, db_dir, schema.ZIMBRA_DB, t, override={"mailbox_id": m})
        for t in schema.GROUP_TABLE_COLUMNS:
            if rows.get((g_src, t), 1):  # an empty table's dump is not read
                dbdump.load(cur, db_dir, g_src, t, into=f"{g_dst}.{t}",
                            override={"mailbox_id": m} if moved else None)
        cur.execute("UPDATE zimbra.current_volumes SET next_mailbox_id ="
                    " GREATEST(next_mailbox_id, %s)", (m + 1,))
        conn.commit()
    except pymysql.err.Error as e:
        conn.rollback()
        raise ServiceError(f"database error restoring {step.email}: "
                           f"{e.args[-1] if e.args else e}") from e
    except BaseException:
        conn.rollback()
        raise
    if blobs and not step.meta.skip_blobs:
        clear_blobs(env, m)
        refs = blobpack.read_manifest(step.account_dir / "blobs")
        blobpack.extract(step.session.path, refs, site.blobs.mailbox_dir(m), containers)
    restore_index(env, step, m, with_index=search_index)


def source_group(step: Step) -> str:
    """The mboxgroup database the backed-up rows came from (their dump files are named so)."""
    found = sorted((step.account_dir / "db").glob("mboxgroup*.mail_item.parquet"))
    if not found:
        raise FormatError(f"{step.account_dir / 'db'} holds no mail_item dump")
    return found[0].name.split(".")[0]


def clear_blobs(env: Env, m: int) -> None:
    """Remove the mailbox's blob files (its folders stay: the running store remembers them)."""
    for folder, names in env.site.blobs.mailbox_blob_names(m):
        for n in names:
            try:
                os.unlink(os.path.join(folder, n))
            except FileNotFoundError:
                pass


def restore_index(env: Env, step: Step, m: int, *, with_index: bool) -> None:
    """Put the backed-up index in place through SQLite (a running store may have it open), or
    leave an empty index marked for reindexing."""
    dest = env.site.index.path(m)
    dest.parent.mkdir(parents=True, exist_ok=True)
    kind = step.meta.index
    src_dir = step.account_dir / "index"
    if with_index and kind != "none":
        with ExitStack() as stack:
            src = stack.enter_context(closing(_index_source(stack, src_dir, kind, dest)))
            dst = stack.enter_context(closing(sqlite3.connect(dest)))
            # Not synced page by page: the restore syncs the volume once at its end.
            dst.execute("PRAGMA synchronous=OFF")
            src.backup(dst)
        return
    idx = MailboxIndex(dest)
    try:
        idx.begin()
        for t in ("docs", "items", "folders", "meta"):
            idx.db.execute(f"DELETE FROM {t}")
        idx.set_hwm(step.meta.change_checkpoint)
        idx.db.execute("INSERT INTO meta (key, value) VALUES ('reindex', 1)")
        idx.commit()
    finally:
        idx.close()


def _index_source(stack: ExitStack, src_dir: Path, kind: str,
                  dest: Path) -> sqlite3.Connection:
    """A connection to the backed-up index: the zip member deserialized in memory when it is
    small enough, else extracted next to `dest`; the file itself when not zipped."""
    if kind != "zip":
        return sqlite3.connect(src_dir / INDEX_MEMBER)
    path = src_dir / "index.zip"
    try:
        z = stack.enter_context(zipfile.ZipFile(path))
        size = z.getinfo(INDEX_MEMBER).file_size
        if size <= IMAGE_MAX:
            data = bytearray(z.read(INDEX_MEMBER))
            if data[18:20] == b"\x02\x02":  # a WAL-mode image (memory has no WAL)
                data[18:20] = b"\x01\x01"
            mem = sqlite3.connect(":memory:")
            mem.deserialize(bytes(data))
            return mem
        tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=dest.parent,
                                                              prefix=".restore-"))
        z.extract(INDEX_MEMBER, tmp)
        return sqlite3.connect(Path(tmp) / INDEX_MEMBER)
    except (FileNotFoundError, KeyError, zipfile.BadZipFile) as e:
        raise FormatError(f"{path} is missing or damaged: {e}") from e


def restore_sys(env: Env, conn: Any, info: SessionInfo, *, online: bool) -> None:
    """-sys: localconfig.xml as localconfig.xml.restore; the global tables merged in."""
    sysdir = info.path / "sys"
    lc = sysdir / localconfig.FILE
    if lc.is_file():
        dest = localconfig.path(env.settings.state_dir).with_name(localconfig.RESTORED)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lc, dest)
    if online:
        return  # the running store owns its global tables
    try:
        cur = conn.cursor()
        dbdump.load(cur, sysdir / "db", schema.ZIMBRA_DB, "deleted_account", replace=True)
        names, rows = dbdump.read_rows(sysdir / "db", schema.ZIMBRA_DB, "current_volumes")
        if rows:
            nxt = rows[0][names.index("next_mailbox_id")]
            cur.execute("UPDATE zimbra.current_volumes SET next_mailbox_id ="
                        " GREATEST(next_mailbox_id, %s)", (nxt,))
        conn.commit()
    except pymysql.err.Error as e:
        conn.rollback()
        raise ServiceError(f"database error restoring the system data: {e}") from e
