"""A canonical digest of a store's logical content, per mailbox and for the whole store.

Per mailbox: its `mailbox` row (operational columns left out), every row of `mail_item`, `tag`,
`tagged_item`, `tombstone` and `revision` in key order, its config sections
(`mailbox_metadata`), every blob file under the mailbox's directory (name and SHA-256 of its
uncompressed content), and its index (items, folders, documents and the applied change number). For the store: the mailbox digests plus `deleted_account` and the
next mailbox id. Paths of volumes (the `volume` table) are left out, so a standby built on other
paths compares equal to its primary. Two stores with the same logical content have the same digest.

Each digest is also given per volume (`volumes`: `db`, `blob`, `index`), so a failover can show
the database and blobs equal to the primary the moment the replay ends and the index once its
catch-up has finished. A mailbox's digest is the hash of its three volume digests; the store's
volume digests hash the mailboxes' (with `deleted_account` and the next mailbox id in `db`).

`digest_settings` works on a stopped store too: it starts the store's MariaDB read-only on a
private socket for the purpose and stops it afterwards.
"""

from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby.settings import Settings
from standby.store.blobs import BlobStore
from standby.store.index import IndexStore
from standby.store.mariadb import MariaDB
from standby.store.schema import (
    GROUP_TABLE_COLUMNS,
    MAILBOX_COLUMNS,
    MAILBOX_VOLATILE,
    group_of,
)
from standby.store.site import Site, mariadb

_ORDER = {
    "mail_item": "id",
    "tag": "id",
    "tagged_item": "tag_id, item_id",
    "tombstone": "sequence, type, ids",
    "revision": "item_id, version",
}


VOLUMES = ("db", "blob", "index")


@dataclass
class MailboxDigest:
    mailbox_id: int
    account_id: str | None
    digest: str
    rows: int = 0
    blobs: int = 0
    docs: int = 0
    volumes: dict[str, str] = field(default_factory=dict)
    pending: int = 0  # index documents not yet caught up (a `--index defer` replay)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StoreDigest:
    total: str
    mailboxes: list[MailboxDigest] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "volumes": self.volumes,
                "mailboxes": [m.as_dict() for m in self.mailboxes]}

    def equal(self, other: StoreDigest) -> dict[str, bool]:
        """Per volume (and `all`): is this store's content the same as `other`'s?"""
        out = {v: self.volumes.get(v) == other.volumes.get(v) for v in VOLUMES}
        out["all"] = self.total == other.total
        return out


def _h(*parts: object) -> bytes:
    return (repr(parts) + "\n").encode("utf-8", "surrogatepass")


def _blob_hash(blobs: BlobStore, path: Path) -> str:
    return hashlib.sha256(blobs.read(path)).hexdigest()


def mailbox_digest(conn: Any, m: int, *, groups: int, blobs: BlobStore, index: IndexStore,
                   pool: ThreadPoolExecutor | None = None) -> MailboxDigest:
    h = hashlib.sha256()  # db
    hb = hashlib.sha256()
    hi = hashlib.sha256()
    cur = conn.cursor()
    cols = [c for c in MAILBOX_COLUMNS if c not in MAILBOX_VOLATILE]
    cur.execute(f"SELECT {', '.join(cols)} FROM zimbra.mailbox WHERE id = %s", (m,))
    row = cur.fetchone()
    account = row[cols.index("account_id")] if row else None
    h.update(_h("mailbox", row))
    nrows = 0
    g = group_of(m, groups)
    for table, tcols in GROUP_TABLE_COLUMNS.items():
        cur.execute(f"SELECT {', '.join(tcols)} FROM mboxgroup{g}.{table} WHERE mailbox_id = %s"
                    f" ORDER BY {_ORDER[table]}", (m,))
        for r in cur.fetchall():
            h.update(_h(table, r))
            nrows += 1
    cur.execute("SELECT section, metadata FROM zimbra.mailbox_metadata WHERE mailbox_id = %s"
                " ORDER BY section", (m,))
    for r in cur.fetchall():
        h.update(_h("mailbox_metadata", r))
        nrows += 1
    conn.commit()
    paths = list(blobs.mailbox_blobs(m))
    hashes = list(pool.map(lambda p: _blob_hash(blobs, p), paths)) if pool else \
        [_blob_hash(blobs, p) for p in paths]
    for p, bh in zip(paths, hashes):
        hb.update(_h("blob", p.parent.name, p.name, bh))
    ndocs = pending = 0
    with index.use(m, create=False) as idx:
        if idx is not None:
            deleted = idx.db.execute("SELECT value FROM meta WHERE key = 'deleted'").fetchone()
            if not deleted:
                hi.update(_h("index-hwm", idx.hwm))
                for r in idx.iter_folders():
                    hi.update(_h("index-folder", r))
                for r in idx.iter_docs():
                    hi.update(_h("index-doc", r))
                    ndocs += 1
                pending = idx.pending_count()
    vols = {"db": h.hexdigest(), "blob": hb.hexdigest(), "index": hi.hexdigest()}
    whole = hashlib.sha256(_h(vols["db"], vols["blob"], vols["index"])).hexdigest()
    return MailboxDigest(m, account, whole, nrows, len(paths), ndocs, vols, pending)


def store_digest(conn: Any, *, groups: int, blobs: BlobStore, index: IndexStore,
                 threads: int = 4) -> StoreDigest:
    cur = conn.cursor()
    cur.execute("SELECT id FROM zimbra.mailbox ORDER BY id")
    ids = {r[0] for r in cur.fetchall()}
    # Mailboxes present only on the blob or index volume are content too (orphans differ).
    ids |= set(blobs.mailbox_ids())
    for mid in index.mailbox_ids():
        with index.use(mid, create=False) as idx:
            if idx is not None and not idx.db.execute(
                    "SELECT 1 FROM meta WHERE key = 'deleted'").fetchone():
                ids.add(mid)
    cur.execute("SELECT mailbox_id, account_id, deleted_at FROM zimbra.deleted_account"
                " ORDER BY mailbox_id")
    deleted = cur.fetchall()
    cur.execute("SELECT next_mailbox_id FROM zimbra.current_volumes")
    nxt = cur.fetchone()
    conn.commit()
    total = hashlib.sha256()
    total.update(_h("deleted", deleted, "next", nxt))
    per = {v: hashlib.sha256() for v in VOLUMES}
    per["db"].update(_h("deleted", deleted, "next", nxt))
    out = StoreDigest("")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for m in sorted(ids):
            md = mailbox_digest(conn, m, groups=groups, blobs=blobs, index=index, pool=pool)
            out.mailboxes.append(md)
            total.update(_h(m, md.digest))
            for v in VOLUMES:
                per[v].update(_h(m, md.volumes[v]))
    out.total = total.hexdigest()
    out.volumes = {v: per[v].hexdigest() for v in VOLUMES}
    index.close()
    return out


def digest_site(site: Site) -> StoreDigest:
    """Digest the store on these volumes, running or stopped (a stopped one is read through a
    read-only MariaDB on a private socket, started for the purpose and stopped again)."""
    s = site.settings

    def digest_on(db: MariaDB) -> StoreDigest:
        conn = db.connect()
        try:
            return store_digest(conn, groups=site.groups, blobs=site.blobs, index=site.index)
        finally:
            conn.close()

    if site.db.running():
        return digest_on(site.db)
    with tempfile.TemporaryDirectory(prefix="standby-digest-") as tmp:
        ro = mariadb(s, read_only=True, socket=Path(tmp) / "digest.sock", run_dir=Path(tmp))
        ro.start()
        try:
            return digest_on(ro)
        finally:
            ro.stop()


def digest_settings(s: Settings) -> StoreDigest:
    """Digest the store the settings describe, running or stopped."""
    return digest_site(Site.open(s, writable=False))
