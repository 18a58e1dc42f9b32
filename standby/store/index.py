"""The full-text index on the `index` volume: one SQLite FTS5 database per mailbox.

    <volume>/<(mbox >> 12) & 255>/<mbox>/index/index.sqlite   (WAL mode)

A crash-consistent snapshot of a WAL-mode SQLite database is usable, which is why the index can
be snapshotted with the other volumes without stopping anything.

Each index is self-sufficient for replay: besides the searchable documents (`docs`, rowid = item
id) it keeps which folder each indexed item is in (`items`) and the folder tree (`folders`), so an
EmptyFolder or a folder delete can be applied to the index alone, and `meta.hwm`, the highest
mailbox change number this index has applied. An op is applied to the index only if its change
number is above `hwm`, in the same SQLite transaction that raises `hwm`: exact idempotency.

Documents can be deferred, as Zimbra defers indexing new items (`index_id` DEFERRED): a failover
replay with `--index defer` applies every op to `items`, `folders` and `hwm` as usual but, instead
of tokenizing a document, records its item in `pending` — with the document's text when the op
carried it (contacts), with none when the text comes from the message's blob. `pending` is the
exact record of what the index lacks; the catch-up (`standby.replay.catchup`) fills it in from
the blob volume. Invariants: every id in `docs` or `pending` has an `items` row, and no id is in
both (a document put removes its pending entry, a deferred one removes its document, a removed
item leaves both). A volume with deferred documents carries `CATCHUP_MARKER` at its root,
written before the first pending entry and removed only by a catch-up that found none left.
"""

from __future__ import annotations

import os
import shutil
import time
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from standby.store.blobs import BlobStore, mailbox_dirs
from standby.store.mime import MessageFields, message_fields

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, type INTEGER NOT NULL,"
    " folder_id INTEGER NOT NULL, mod_content INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS items_folder ON items (folder_id)",
    "CREATE TABLE IF NOT EXISTS folders (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(subject, sender, recipients, body,"
    " tokenize = 'unicode61')",
    # Documents this index lacks: text NULL means "from the message's blob" (see the docstring).
    "CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY, subject TEXT, sender TEXT,"
    " recipients TEXT, body TEXT)",
)
AUTOMERGE = 8
CATCHUP_MARKER = ".catchup-needed"
CATCHUP_BATCH = 200  # documents per catch-up transaction: short write locks beside a live store

# `now`: documents are tokenized as ops are applied (one phase); `defer`: they are recorded in
# `pending` for the catch-up (two phases).
IndexMode = Literal["now", "defer"]
INDEX_MODES: tuple[IndexMode, ...] = ("now", "defer")


@dataclass(frozen=True)
class Doc:
    item_id: int
    type: int
    folder_id: int
    mod_content: int
    subject: str
    sender: str
    recipients: str
    body: str


def index_dir(root: Path, mailbox_id: int) -> Path:
    return root / f"{(mailbox_id >> 12) & 255}" / str(mailbox_id) / "index"


class MailboxIndex:
    """One mailbox's index. Not thread-safe: callers hold the mailbox's lock."""

    def __init__(self, path: Path, *, create: bool = True, cache_kb: int | None = None) -> None:
        self.path = path
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if cache_kb is not None:  # many open indexes: keep each one's page cache small
            self.db.execute(f"PRAGMA cache_size=-{int(cache_kb)}")
        have = {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('docs', 'pending')")}
        if len(have) < 2:  # new, or from before deferred documents: one transaction for all
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for ddl in _SCHEMA:
                    self.db.execute(ddl)
                if "docs" not in have:
                    # Merge segments 8 at a time, not FTS5's default 4 (Lucene, Zimbra's index,
                    # merges 10): a fifth less work per document inserted, a few more segments
                    # to read.
                    self.db.execute("INSERT INTO docs (docs, rank) VALUES ('automerge',"
                                    f" {AUTOMERGE})")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    def start_wal(self) -> None:
        """Pay the WAL's first sync now: SQLite syncs the WAL and its folder at the first
        commit after the WAL starts afresh (as it does after every close), so a writer that
        opens indexes ahead of using them does it there, with a write that changes nothing,
        rather than at a commit on its critical path."""
        v = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        self.db.execute(f"PRAGMA user_version = {v}")

    # -- transactions -----------------------------------------------------------------------
    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    @property
    def hwm(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'hwm'").fetchone()
        return int(row[0]) if row else 0

    def set_hwm(self, change: int) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES ('hwm', ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (change,))

    # -- documents --------------------------------------------------------------------------
    def put(self, doc: Doc) -> None:
        self.drop_text(doc.item_id)
        self.db.execute("INSERT INTO docs (rowid, subject, sender, recipients, body)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (doc.item_id, doc.subject, doc.sender, doc.recipients, doc.body))
        self._put_item(doc.item_id, doc.type, doc.folder_id, doc.mod_content)

    def put_message(self, item_id: int, type: int, folder_id: int, mod_content: int,
                    fields: Callable[[], MessageFields]) -> None:
        """A message's document, its fields parsed now (`fields` may raise OSError for a blob
        that cannot be read: nothing is written then)."""
        f = fields()
        self.put(Doc(item_id, type, folder_id, mod_content, f.subject, f.sender, f.recipients,
                     f.text))

    def _put_item(self, item_id: int, type: int, folder_id: int, mod_content: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO items (id, type, folder_id, mod_content)"
                        " VALUES (?, ?, ?, ?)", (item_id, type, folder_id, mod_content))

    def defer(self, item_id: int, type: int, folder_id: int, mod_content: int,
              text: tuple[str, str, str, str] | None = None, *, fresh: bool = False) -> None:
        """Record that this item's document is missing (`text`: subject, sender, recipients,
        body when known, else it comes from the blob); any document it had is removed (`fresh`:
        the caller knows there is none)."""
        if not fresh:
            self.drop_text(item_id)
        self._put_item(item_id, type, folder_id, mod_content)
        self.db.execute("INSERT OR REPLACE INTO pending (id, subject, sender, recipients, body)"
                        " VALUES (?, ?, ?, ?, ?)", (item_id, *(text or (None,) * 4)))

    def remove(self, ids: Iterable[int]) -> None:
        rows = [(i,) for i in ids]
        # FTS5 deletes only for the items that have a document: listed, and not pending (the
        # invariants), 500 ids a query.
        indexed: list[tuple[int]] = []
        for part in (rows[i:i + 500] for i in range(0, len(rows), 500)):
            q = ",".join("?" * len(part))
            indexed += self.db.execute(
                f"SELECT id FROM items WHERE id IN ({q}) AND id NOT IN (SELECT id FROM pending"
                f" WHERE id IN ({q}))", [r[0] for r in part] * 2).fetchall()
        self.db.executemany("DELETE FROM docs WHERE rowid = ?", indexed)
        self.db.executemany("DELETE FROM pending WHERE id = ?", rows)
        self.db.executemany("DELETE FROM items WHERE id = ?", rows)

    def drop_text(self, item_id: int) -> None:
        """Remove an item's document and pending entry, if the index lists the item (one it
        does not list has neither: the invariants; an FTS5 delete costs more than the look)."""
        if self.db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone():
            self.db.execute("DELETE FROM docs WHERE rowid = ?", (item_id,))
            self.db.execute("DELETE FROM pending WHERE id = ?", (item_id,))

    def wipe(self) -> None:
        """Every document, item and folder gone, and the index marked as a deleted mailbox's."""
        for table in ("docs", "pending", "items", "folders"):
            self.db.execute(f"DELETE FROM {table}")
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('deleted', 1)")

    # -- deferred documents -----------------------------------------------------------------
    def pending_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM pending").fetchone()[0])

    def is_behind(self) -> bool:
        return self.db.execute("SELECT 1 FROM pending LIMIT 1").fetchone() is not None

    def pending_batch(self, after: int, limit: int) -> list[tuple[int, int, int, int,
                                                                  tuple[str, str, str, str]
                                                                  | None]]:
        """Up to `limit` pending entries with ids above `after`, in id order: (id, type,
        folder_id, mod_content, text or None); an entry without an items row (which the
        invariants rule out) comes back with type -1."""
        out = []
        for iid, typ, folder, mc, subj, snd, rcp, body in self.db.execute(
                "SELECT p.id, i.type, i.folder_id, i.mod_content, p.subject, p.sender,"
                " p.recipients, p.body FROM pending p LEFT JOIN items i ON i.id = p.id"
                " WHERE p.id > ? ORDER BY p.id LIMIT ?", (after, limit)):
            text = None if subj is None else (subj, snd or "", rcp or "", body or "")
            out.append((iid, -1 if typ is None else typ, folder or 0, mc or 0, text))
        return out

    def fill(self, docs: list[tuple[int, int, tuple[str, str, str, str]]]) -> int:
        """Inside a transaction: the documents of pending items, each (id, mod_content the text
        was read for, text); one whose entry is gone, or whose item changed content since, is
        left alone (a live change got there first). Returns how many were written."""
        if not docs:
            return 0
        still: dict[int, int] = {}
        ids = [d[0] for d in docs]
        for part in (ids[i:i + 500] for i in range(0, len(ids), 500)):
            q = ",".join("?" * len(part))
            still.update(self.db.execute(
                f"SELECT p.id, i.mod_content FROM pending p JOIN items i ON i.id = p.id"
                f" WHERE p.id IN ({q})", part).fetchall())
        rows = [(iid, *text) for iid, mc, text in docs if still.get(iid) == mc]
        self.db.executemany("INSERT INTO docs (rowid, subject, sender, recipients, body)"
                            " VALUES (?, ?, ?, ?, ?)", rows)
        self.db.executemany("DELETE FROM pending WHERE id = ?", [(r[0],) for r in rows])
        return len(rows)

    def drop_pending(self, ids: Iterable[int]) -> None:
        """Entries with no items row: nothing to index (the invariants rule them out)."""
        self.db.executemany("DELETE FROM pending WHERE id = ? AND id NOT IN"
                            " (SELECT id FROM items)", [(i,) for i in ids])

    def move(self, ids: Iterable[int], folder_id: int) -> None:
        self.db.executemany("UPDATE items SET folder_id = ? WHERE id = ?",
                            [(folder_id, i) for i in ids])

    # -- folders ----------------------------------------------------------------------------
    def put_folder(self, folder_id: int, parent_id: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO folders (id, parent_id) VALUES (?, ?)",
                        (folder_id, parent_id))

    def subfolders(self, folder_id: int, exclude: frozenset[int] = frozenset()) -> list[int]:
        """Folders strictly below `folder_id`, not entering those in `exclude`."""
        out, frontier = [], [folder_id]
        while frontier:
            q = ",".join("?" * len(frontier))
            frontier = [r[0] for r in self.db.execute(
                f"SELECT id FROM folders WHERE parent_id IN ({q}) AND id <> parent_id", frontier)
                if r[0] not in exclude]
            out.extend(frontier)
        return out

    def items_in(self, folder_ids: list[int]) -> list[int]:
        q = ",".join("?" * len(folder_ids))
        return [r[0] for r in self.db.execute(
            f"SELECT id FROM items WHERE folder_id IN ({q}) ORDER BY id", folder_ids)]

    def remove_folders(self, folder_ids: Iterable[int]) -> None:
        self.db.executemany("DELETE FROM folders WHERE id = ?", [(f,) for f in folder_ids])

    # -- reading ----------------------------------------------------------------------------
    def search(self, query: str, limit: int = 50) -> list[int]:
        return [r[0] for r in self.db.execute(
            "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT ?", (query, limit))]

    def iter_docs(self) -> Iterator[tuple[object, ...]]:
        """Every document with its item row, in item order (for digests)."""
        yield from self.db.execute(
            "SELECT i.id, i.type, i.folder_id, i.mod_content, d.subject, d.sender,"
            " d.recipients, d.body FROM items i LEFT JOIN docs d ON d.rowid = i.id ORDER BY i.id")

    def iter_folders(self) -> Iterator[tuple[int, int]]:
        yield from self.db.execute("SELECT id, parent_id FROM folders ORDER BY id")

    def doc_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])


@dataclass
class MailboxCatchup:
    mailbox_id: int
    documents: int = 0
    missing: list[int] = field(default_factory=list)  # items whose blob could not be read
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def catch_up_mailbox(idx: MailboxIndex, blobs: BlobStore, mailbox_id: int, *,
                     batch: int = CATCHUP_BATCH,
                     parse: Callable[[bytes], MessageFields] = message_fields,
                     stop: Callable[[], bool] = lambda: False) -> MailboxCatchup:
    """Fill in every pending document of one mailbox's index from the blob volume, in
    transactions of `batch` (the catch-up's step, `standby.replay.catchup`): the text is read
    and parsed outside the transaction, and written only for entries still pending at the same
    content revision (`fill`). Idempotent; a kill loses at most the batch in flight."""
    out = MailboxCatchup(mailbox_id)
    t0, c0 = time.perf_counter(), time.process_time()
    after = 0
    while not stop():
        rows = idx.pending_batch(after, batch)
        if not rows:
            break
        after = rows[-1][0]
        ready: list[tuple[int, int, tuple[str, str, str, str]]] = []
        orphans: list[int] = []
        for iid, typ, _folder, mc, text in rows:
            if typ < 0:
                orphans.append(iid)
                continue
            if text is None:
                try:
                    data = blobs.read(blobs.path(mailbox_id, iid, mc))
                except (FileNotFoundError, NotADirectoryError):
                    out.missing.append(iid)  # or deleted by a live change just now
                    continue
                f = parse(data)
                text = (f.subject, f.sender, f.recipients, f.text)
            ready.append((iid, mc, text))
        idx.begin()
        try:
            out.documents += idx.fill(ready)
            idx.drop_pending(orphans)
            idx.commit()
        except BaseException:
            idx.rollback()
            raise
    if out.missing:  # only those still pending are missing (a live delete may have won)
        still = {r[0] for r in idx.pending_batch(0, 1 << 30)}
        out.missing = [i for i in out.missing if i in still]
    out.seconds = time.perf_counter() - t0
    out.cpu_seconds = time.process_time() - c0
    return out


class IndexStore:
    """All mailbox indexes on one volume, with a bounded cache of open databases."""

    def __init__(self, root: Path, *, cache_size: int = 256, cache_kb: int | None = None) -> None:
        self.root = root
        self.cache_kb = cache_kb
        self._open: OrderedDict[int, MailboxIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}
        self.cache_size = cache_size

    def path(self, mailbox_id: int) -> Path:
        return index_dir(self.root, mailbox_id) / "index.sqlite"

    def exists(self, mailbox_id: int) -> bool:
        return self.path(mailbox_id).exists()

    def size(self, mailbox_id: int) -> int:
        """Bytes of a mailbox's index and its WAL (0 if it has none)."""
        n, db = 0, self.path(mailbox_id)
        for p in (db, db.with_name(db.name + "-wal")):
            try:
                n += p.stat().st_size
            except FileNotFoundError:
                pass
        return n

    @contextmanager
    def use(self, mailbox_id: int, *, create: bool = True) -> Iterator[MailboxIndex | None]:
        """Borrow a mailbox's index; it is not closed by the cache while borrowed."""
        with self._lock:
            idx = self._open.get(mailbox_id)
            if idx is not None:
                self._open.move_to_end(mailbox_id)
        if idx is None:
            p = self.path(mailbox_id)
            if not create and not p.exists():
                yield None
                return
            fresh = MailboxIndex(p, cache_kb=self.cache_kb)
            with self._lock:
                idx = self._open.get(mailbox_id)
                if idx is None:
                    idx = self._open[mailbox_id] = fresh
                else:
                    fresh.close()
        with self._lock:
            self._users[mailbox_id] = self._users.get(mailbox_id, 0) + 1
        try:
            yield idx
        finally:
            with self._lock:
                n = self._users[mailbox_id] - 1
                if n:
                    self._users[mailbox_id] = n
                else:
                    del self._users[mailbox_id]
                self._evict()

    def _evict(self) -> None:
        excess = len(self._open) - self.cache_size
        if excess <= 0:
            return
        for mid in list(self._open):
            if excess <= 0:
                break
            if mid in self._users:
                continue
            self._open.pop(mid).close()
            excess -= 1

    def drop(self, mailbox_id: int) -> None:
        """Delete a mailbox's index entirely."""
        with self._lock:
            idx = self._open.pop(mailbox_id, None)
        if idx is not None:
            idx.close()
        shutil.rmtree(index_dir(self.root, mailbox_id).parent, ignore_errors=True)

    # -- the volume's catch-up marker ---------------------------------------------------------
    @property
    def marker_path(self) -> Path:
        return self.root / CATCHUP_MARKER

    def mark_behind(self, note: str) -> None:
        """Say, durably, that documents may be pending on this volume (before any is)."""
        tmp = self.root / f"{CATCHUP_MARKER}.tmp"
        with open(tmp, "w") as f:
            f.write(note + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.marker_path)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def marked_behind(self) -> bool:
        return self.marker_path.exists()

    def clear_behind(self) -> None:
        self.marker_path.unlink(missing_ok=True)

    def pending_counts(self, mailbox_ids: Iterable[int] | None = None) -> dict[int, int]:
        """Mailbox -> documents pending, for the mailboxes given (default: every index on the
        volume) that have any."""
        out: dict[int, int] = {}
        for m in sorted(self.mailbox_ids() if mailbox_ids is None else set(mailbox_ids)):
            with self.use(m, create=False) as idx:
                if idx is not None:
                    n = idx.pending_count()
                    if n:
                        out[m] = n
        return out

    def mailbox_ids(self) -> list[int]:
        """Mailboxes that have an index on this volume."""
        return sorted(m for m, d in mailbox_dirs(self.root)
                      if (d / "index" / "index.sqlite").exists())

    def open_ids(self) -> list[int]:
        with self._lock:
            return list(self._open)

    def close_one(self, mailbox_id: int) -> None:
        """Close one cached index (not borrowed at the moment: the caller knows)."""
        with self._lock:
            idx = self._open.pop(mailbox_id, None)
        if idx is not None:
            idx.close()

    def close(self) -> None:
        with self._lock:
            for idx in self._open.values():
                idx.close()
            self._open.clear()


class IndexOverlay:
    """Base of the index writers that change how documents are written (`DeferringWriter`,
    the fast engine's per-chunk writer) and hand everything else to a MailboxIndex."""

    def __init__(self, idx: MailboxIndex) -> None:
        self.idx = idx
        self.db = idx.db

    def remove(self, ids: Iterable[int]) -> None:
        self.idx.remove(ids)

    def defer(self, item_id: int, type: int, folder_id: int, mod_content: int,
              text: tuple[str, str, str, str] | None = None) -> None:
        self.idx.defer(item_id, type, folder_id, mod_content, text)

    def wipe(self) -> None:
        self.idx.wipe()

    def move(self, ids: Iterable[int], folder_id: int) -> None:
        self.idx.move(ids, folder_id)

    def put_folder(self, folder_id: int, parent_id: int) -> None:
        self.idx.put_folder(folder_id, parent_id)

    def subfolders(self, folder_id: int, exclude: frozenset[int] = frozenset()) -> list[int]:
        return self.idx.subfolders(folder_id, exclude)

    def items_in(self, folder_ids: list[int]) -> list[int]:
        return self.idx.items_in(folder_ids)

    def remove_folders(self, folder_ids: Iterable[int]) -> None:
        self.idx.remove_folders(folder_ids)


class DeferringWriter(IndexOverlay):
    """The index writer of `--index defer`: a MailboxIndex whose documents go to `pending`
    instead of being tokenized; everything else (items, folders) is applied as usual."""

    def put(self, doc: Doc) -> None:
        self.idx.defer(doc.item_id, doc.type, doc.folder_id, doc.mod_content,
                       (doc.subject, doc.sender, doc.recipients, doc.body))

    def put_message(self, item_id: int, type: int, folder_id: int, mod_content: int,
                    fields: Callable[[], MessageFields]) -> None:
        self.idx.defer(item_id, type, folder_id, mod_content)
