"""What each redo op does to the three data volumes (database, blobs, index), one op at a time.

This module is the single definition of the ops' effects used by the live store (after logging a
change record), by crash recovery, and by the naive replay engine. The fast replay engine computes
the same final state by folding; tests compare the two.

Exact idempotency per volume (DESIGN.md §1):
- database: an op is applied only if its change number is above `mailbox.change_checkpoint`,
  which the same transaction raises; a mailbox that was deleted is remembered in
  `deleted_account`, so a replayed CreateMailbox does not bring it back;
- index: the same rule against the mailbox index's own `hwm`, in one SQLite transaction; with
  `index_mode="defer"` documents are recorded as pending instead of tokenized (`store.index`),
  everything else the op does to the index is applied as with "now";
- blobs: a blob is written only if missing or wrong. Blob deletions are known from the database's
  state before the op; when the database had already applied the op (replay, crash recovery) they
  are made by `collect_garbage`, which removes the blob files of a mailbox that no database row
  refers to. Run it for every mailbox an interrupted or replayed sequence touched, once the
  database has caught up.

Items and flags follow Zimbra: the `unread` column is kept apart from `flags`; tag membership is
in `tagged_item`; cached counters (folder and tag counts, mailbox size and contact count) are
left at zero because they are derivable.

Besides the ops the store writes, Zimbra's other mail-item ops apply as their `redo()` does:
RenameItem, ColorItem (an item's metadata "c", a tag's color), DateItem, SetImapUid (the uids
the original run took from the item id counter), CreateSavedSearch/ModifySavedSearch (a search
folder row, its metadata q/t/s/c), SetCustomData (the item's metadata "xd.<section>"),
DeleteItemFromDumpster (nothing to purge: items are deleted
for good, as with Zimbra's dumpster off, its default). Every other op (`APPLIED_OPS`) is outside
the store's model and a replay reports it as not applied.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from standby.redolog import javafmt
from standby.redolog.ops import (
    FLAG_ATTACHED,
    FLAG_NAMES,
    FLAG_UNCHANGED,
    FLAG_UNREAD,
    TYPE_CONTACT,
    TYPE_FOLDER,
    TYPE_MESSAGE,
    TYPE_UNKNOWN,
    AlterItemTag,
    CreateContact,
    CreateFolder,
    CreateMailbox,
    CreateMessage,
    CreateTag,
    DeleteItem,
    DeleteMailbox,
    EmptyFolder,
    IndexItem,
    ModifyContact,
    MoveItem,
    RenameFolder,
    RenameTag,
    ColorItem,
    CreateSavedSearch,
    DateItem,
    DeleteItemFromDumpster,
    ModifySavedSearch,
    RenameItem,
    SetCustomData,
    SetImapUid,
    SetItemTags,
    StoreIncomingBlob,
)
from standby.redolog import metadata
from standby.redolog.record import Op, Record
from standby.store import blobs as blobmod
from standby.store.blobs import BlobStore
from standby.store.index import Doc, DeferringWriter, IndexMode, IndexStore
from standby.store.mime import MessageFields, message_fields
from standby.store.schema import INDEX_VOLUME_ID, SCHEMA_VERSION, group_of

FIRST_USER_ID = 256
# (id, name, parent, attrs, default view) as Zimbra's Mailbox.createDefaultFolders.
SYSTEM_FOLDERS: tuple[tuple[int, str, int, int, int], ...] = (
    (11, "ROOT", 11, 0x03, TYPE_UNKNOWN),
    (8, "Tags", 11, 0x03, 3),
    (9, "Conversations", 11, 0x03, 4),
    (17, "Comments", 11, 0x03, 17),
    (1, "USER_ROOT", 11, 0x01, TYPE_UNKNOWN),
    (2, "Inbox", 1, 0x01, TYPE_MESSAGE),
    (3, "Trash", 1, 0x01, TYPE_UNKNOWN),
    (4, "Junk", 1, 0x01, TYPE_MESSAGE),
    (5, "Sent", 1, 0x01, TYPE_MESSAGE),
    (6, "Drafts", 1, 0x01, TYPE_MESSAGE),
    (7, "Contacts", 1, 0x01, TYPE_CONTACT),
    (10, "Calendar", 1, 0x01, 11),
    (13, "Emailed Contacts", 1, 0x01, TYPE_CONTACT),
    (14, "Chats", 1, 0x01, TYPE_MESSAGE),
    (15, "Tasks", 1, 0x01, 15),
    (16, "Briefcase", 1, 0x01, 8),
)
SYSTEM_FOLDER_IDS = frozenset(f[0] for f in SYSTEM_FOLDERS)
SENDER_MAX, RECIPIENTS_MAX, SUBJECT_MAX = 128, 128, 1024

# Ops that change a mailbox (and so carry a change number).
MAILBOX_OPS = (CreateMailbox, DeleteMailbox, CreateFolder, RenameFolder, EmptyFolder, CreateTag,
               RenameTag, CreateMessage, SetItemTags, AlterItemTag, MoveItem, DeleteItem,
               CreateContact, ModifyContact, IndexItem, RenameItem, ColorItem, DateItem,
               SetImapUid, CreateSavedSearch, ModifySavedSearch, DeleteItemFromDumpster,
               SetCustomData)
TYPE_TAG, TYPE_SEARCH = 3, 2
# Every op this store applies to its volumes. The other Zimbra ops (calendar, notes, documents,
# chats, mountpoints, ACLs, volumes, ...) are outside its model: a replay decodes them, counts
# them by name and reports them as not applied.
APPLIED_OPS: frozenset[type[Op]] = frozenset({*MAILBOX_OPS, StoreIncomingBlob})


def applies(op: Op) -> bool:
    """Whether the store applies this op (else a replay counts it as not applied)."""
    return type(op) in APPLIED_OPS


def not_applied(rec: Record) -> str:
    """The message a replay with --stopOnError stops with on an op outside the store."""
    return (f"{rec.op.NAME} (mailbox {rec.mailbox_id}, change {rec.change_id}) is not applied: "
            "this store models a mail server's messages, folders, tags, contacts and "
            "searches, not calendars, notes, documents, chats, mountpoints, sharing or "
            "volumes; run without --stopOnError to count such ops and go on")


class BlobSource(Protocol):
    """Where a message's bytes come from when the op does not carry them (LINK delivery)."""

    def linked(self, op: CreateMessage, mailbox_id: int | None = None) -> bytes | None: ...


class NoLinkedBlobs:
    def linked(self, op: CreateMessage, mailbox_id: int | None = None) -> bytes | None:
        return None


class IncomingBlobs:
    """Resolves LINK deliveries: from a StoreIncomingBlob seen in the log, else the staged file.

    `remember` takes a loader rather than the bytes so a replay can keep only a reference into
    the log file; an entry is dropped once every mailbox the blob was stored for has linked it.
    """

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._known: dict[str, tuple[Callable[[], bytes], set[int]]] = {}

    def remember(self, op: StoreIncomingBlob, loader: Callable[[], bytes]) -> None:
        if op.path:
            self._known[op.path] = (loader, set(op.mailbox_ids or ()))

    def remember_bytes(self, op: StoreIncomingBlob) -> None:
        """`remember` with the blob bytes already in hand (the op was decoded with them)."""
        data: bytes = op.data
        self.remember(op, lambda: data)

    def linked(self, op: CreateMessage, mailbox_id: int | None = None) -> bytes | None:
        if op.path is None:
            return None
        entry = self._known.get(op.path)
        if entry is not None:
            loader, pending = entry
            data = loader()
            if mailbox_id is not None:
                pending.discard(mailbox_id)
                if not pending:
                    del self._known[op.path]
            return data
        p = Path(op.path)
        try:
            data = self.blobs.read(p)
        except OSError:
            return None
        return data if not op.digest or blobmod.digest(data) == op.digest else None

    def __len__(self) -> int:
        return len(self._known)


@dataclass
class Outcome:
    """What one op did to each volume."""

    db: str = "none"  # applied | skipped | missing | none
    blob: str = "none"  # written | present | missing-source | none
    index: str = "none"  # applied | skipped | missing | none
    blob_deletes: list[Path] = field(default_factory=list)
    error: str | None = None


class Content:
    """Lazily parsed message bytes and fields, shared by the three volumes for one op."""

    __slots__ = ("_fields", "data")

    def __init__(self, data: bytes | None) -> None:
        self.data = data
        self._fields: MessageFields | None = None

    @property
    def fields(self) -> MessageFields:
        if self._fields is None:
            self._fields = message_fields(self.data or b"")
        return self._fields


def folder_metadata(view: int, color: int, attrs: int, url: str) -> str:
    meta: dict[str, object] = {"vt": view, "c": color}
    if attrs:
        meta["fa"] = attrs
    if url:
        meta["url"] = url
    return javafmt.bencode_map(meta)


def search_metadata(query: str | None, types: str | None, sort: str | None, color: int) -> str:
    """A saved search's metadata (SearchFolder: query "q", types "t", sort "s", color "c")."""
    return metadata.to_string({"q": query, "t": types, "s": sort, "c": color})


def with_metadata(encoded: str | None, **changes: object) -> str:
    """An item's metadata with some keys set (ColorItem's "c", ModifySavedSearch's q/t/s);
    a key set to None is removed."""
    meta: dict[str, object] = dict(metadata.parse_or_none(encoded) or {})
    meta.update(changes)
    return metadata.to_string({k: v for k, v in meta.items() if v is not None})


def custom_data_change(key: str | None, value: str | None) -> dict[str, object]:
    """SetCustomData as MailItem.setCustomData stores it: the section under "xd.<section>" as
    CustomMetadata re-serializes it (every value a string), or removed when it is empty."""
    if key is None:
        return {}
    section = metadata.java_trim(key)
    meta = metadata.parse_or_none(value)
    if not meta:
        return {f"xd.{section}": None}
    return {f"xd.{section}": metadata.to_string({k: metadata.to_text(v) for k, v in meta.items()})}


def contact_text(attrs: tuple[tuple[str, str], ...]) -> tuple[str, str, str]:
    """(display name, email, body text) of a contact, for the row and the index."""
    a = dict(attrs)
    name = a.get("fullName") or " ".join(
        x for x in (a.get("firstName", ""), a.get("lastName", "")) if x)
    email = a.get("email", "")
    body = "\n".join(f"{k}: {v}" for k, v in attrs)
    return name, email, body


def message_flags(op_flags: int, fields: MessageFields) -> tuple[int, int]:
    """(flags column, unread column) for a delivered message."""
    flags = op_flags & ~FLAG_UNREAD
    if fields.has_attachment:
        flags |= FLAG_ATTACHED
    return flags, 1 if op_flags & FLAG_UNREAD else 0


class Effects:
    """Applies ops. Side effects come in: a DB connection per call, the blob and index stores."""

    def __init__(self, *, groups: int, blobs: BlobStore, index: IndexStore,
                 source: BlobSource | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.groups = groups
        self.blobs = blobs
        self.index = index
        self.source: BlobSource = source or NoLinkedBlobs()
        self.warn = on_warning or (lambda msg: None)

    # -- entry point ------------------------------------------------------------------------
    def apply(self, conn: Any, rec: Record, *, content: bytes | None = None,
              volumes: tuple[str, ...] = ("db", "blob", "index"),
              index_mode: IndexMode = "now") -> Outcome:
        """Apply one committed op to the volumes named; each checks its own change number.

        `content` may pass a message's bytes the caller already has (a LINK delivery in the
        live store); `index_mode` "defer" leaves documents pending for the catch-up.
        """
        op = rec.op
        out = Outcome()
        if isinstance(op, StoreIncomingBlob) or not isinstance(op, MAILBOX_OPS):
            return out
        data = content
        if data is None and isinstance(op, CreateMessage):
            data = op.data if op.data is not None else self.source.linked(op, rec.mailbox_id)
        elif data is None and isinstance(op, CreateContact | ModifyContact):
            data = op.data
        c = Content(data)
        if isinstance(op, CreateMessage) and data is None:
            out.blob = "missing-source"
        if "db" in volumes:
            self._apply_db(conn, rec, c, out)
        if "blob" in volumes:
            self._apply_blob(rec, c, out)
        if "index" in volumes:
            self._apply_index(rec, c, out, index_mode)
        return out

    # -- database ---------------------------------------------------------------------------
    def _t(self, mailbox_id: int, table: str) -> str:
        return f"mboxgroup{group_of(mailbox_id, self.groups)}.{table}"

    def _apply_db(self, conn: Any, rec: Record, c: Content, out: Outcome) -> None:
        op, m, change = rec.op, rec.mailbox_id, rec.change_id
        cur = conn.cursor()
        try:
            if isinstance(op, CreateMailbox):
                out.db = self._db_create_mailbox(cur, rec, op)
            else:
                cur.execute("SELECT change_checkpoint, account_id FROM zimbra.mailbox"
                            " WHERE id = %s FOR UPDATE", (m,))
                row = cur.fetchone()
                if row is None:
                    out.db = "missing"
                elif row[0] >= change:
                    out.db = "skipped"
                else:
                    handler = _DB_HANDLERS[type(op)]
                    handler(self, cur, rec, op, c, out, row[1])
                    if not isinstance(op, DeleteMailbox):
                        cur.execute("UPDATE zimbra.mailbox SET change_checkpoint = %s"
                                    " WHERE id = %s", (change, m))
                    out.db = "applied"
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _db_create_mailbox(self, cur: Any, rec: Record, op: CreateMailbox) -> str:
        m, change = rec.mailbox_id, rec.change_id
        cur.execute("SELECT 1 FROM zimbra.mailbox WHERE id = %s", (m,))
        if cur.fetchone():
            return "skipped"
        cur.execute("SELECT 1 FROM zimbra.deleted_account WHERE mailbox_id = %s", (m,))
        if cur.fetchone():
            return "skipped"
        cur.execute(
            "INSERT INTO zimbra.mailbox (id, group_id, account_id, index_volume_id,"
            " item_id_checkpoint, change_checkpoint, version) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            (m, group_of(m, self.groups), op.account_id, INDEX_VOLUME_ID, FIRST_USER_ID, change,
             SCHEMA_VERSION))
        date = rec.tstamp // 1000
        cur.executemany(
            f"INSERT INTO {self._t(m, 'mail_item')} (mailbox_id, id, type, parent_id, folder_id,"
            " date, size, flags, name, metadata, mod_metadata, change_date, mod_content)"
            " VALUES (%s,%s,%s,%s,%s,%s,0,%s,%s,%s,%s,%s,%s)",
            [(m, fid, TYPE_FOLDER, parent, parent, date, 0x200000 if fid in (10, 15) else 0,
              name, folder_metadata(view, 0, attrs, ""), change, date, change)
             for fid, name, parent, attrs, view in SYSTEM_FOLDERS])
        cur.execute("UPDATE zimbra.current_volumes SET next_mailbox_id ="
                    " GREATEST(next_mailbox_id, %s)", (m + 1,))
        return "applied"

    def _db_delete_mailbox(self, cur: Any, rec: Record, op: Op, c: Content, out: Outcome,
                           account_id: str) -> None:
        m = rec.mailbox_id
        for table in ("tagged_item", "tag", "tombstone", "revision", "mail_item"):
            cur.execute(f"DELETE FROM {self._t(m, table)} WHERE mailbox_id = %s", (m,))
        cur.execute("DELETE FROM zimbra.mailbox WHERE id = %s", (m,))
        cur.execute("INSERT INTO zimbra.deleted_account (email, account_id, mailbox_id,"
                    " deleted_at) VALUES (%s, %s, %s, %s)",
                    (None, account_id, m, rec.tstamp // 1000))

    def _bump_item_ids(self, cur: Any, m: int, item_id: int) -> None:
        cur.execute("UPDATE zimbra.mailbox SET item_id_checkpoint ="
                    " GREATEST(item_id_checkpoint, %s) WHERE id = %s", (item_id, m))

    def _db_create_folder(self, cur: Any, rec: Record, op: CreateFolder, c: Content,
                          out: Outcome, _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        date = (op.date if op.date is not None else rec.tstamp) // 1000
        cur.execute(
            f"INSERT INTO {self._t(m, 'mail_item')} (mailbox_id, id, type, parent_id, folder_id,"
            " date, size, flags, name, metadata, mod_metadata, change_date, mod_content, uuid)"
            " VALUES (%s,%s,%s,%s,%s,%s,0,%s,%s,%s,%s,%s,%s,%s)",
            (m, op.folder_id, TYPE_FOLDER, op.parent_id, op.parent_id, date, op.flags, op.name,
             folder_metadata(op.view, op.color, op.attrs, op.url), change, rec.tstamp // 1000,
             change, op.uuid))
        self._bump_item_ids(cur, m, op.folder_id)

    def _db_rename_folder(self, cur: Any, rec: Record, op: RenameFolder, c: Content,
                          out: Outcome, _a: str) -> None:
        cur.execute(
            f"UPDATE {self._t(rec.mailbox_id, 'mail_item')} SET name = %s, parent_id = %s,"
            " folder_id = %s, mod_metadata = %s, change_date = %s"
            " WHERE mailbox_id = %s AND id = %s AND type = %s",
            (op.name, op.parent_id, op.parent_id, rec.change_id, rec.tstamp // 1000,
             rec.mailbox_id, op.folder_id, TYPE_FOLDER))

    def _subfolders(self, cur: Any, m: int, folder_id: int) -> list[int]:
        """Folders strictly below `folder_id`."""
        out: list[int] = []
        frontier = [folder_id]
        while frontier:
            q = ",".join(["%s"] * len(frontier))
            cur.execute(f"SELECT id FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s AND"
                        f" type = {TYPE_FOLDER} AND folder_id IN ({q}) AND id <> folder_id",
                        (m, *frontier))
            frontier = [r[0] for r in cur.fetchall() if r[0] not in SYSTEM_FOLDER_IDS]
            out.extend(frontier)
        return out

    def _hard_delete(self, cur: Any, rec: Record, ids: list[int], out: Outcome) -> None:
        """Delete items by id: rows, tags, tombstones (one per type), blob paths noted."""
        if not ids:
            return
        m = rec.mailbox_id
        items = self._t(m, "mail_item")
        q = ",".join(["%s"] * len(ids))
        cur.execute(f"SELECT id, type, mod_content, blob_digest FROM {items}"
                    f" WHERE mailbox_id = %s AND id IN ({q}) ORDER BY id", (m, *ids))
        rows = cur.fetchall()
        if not rows:
            return
        found = [r[0] for r in rows]
        q = ",".join(["%s"] * len(found))
        cur.execute(f"DELETE FROM {self._t(m, 'tagged_item')} WHERE mailbox_id = %s"
                    f" AND item_id IN ({q})", (m, *found))
        cur.execute(f"DELETE FROM {items} WHERE mailbox_id = %s AND id IN ({q})", (m, *found))
        by_type: dict[int, list[int]] = {}
        for iid, typ, mod_content, digest in rows:
            by_type.setdefault(typ, []).append(iid)
            if digest:
                out.blob_deletes.append(self.blobs.path(m, iid, mod_content))
        cur.executemany(
            f"INSERT INTO {self._t(m, 'tombstone')} (mailbox_id, sequence, date, type, ids)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(m, rec.change_id, rec.tstamp // 1000, typ, ",".join(map(str, tids)))
             for typ, tids in sorted(by_type.items())])

    def _db_empty_folder(self, cur: Any, rec: Record, op: EmptyFolder, c: Content,
                         out: Outcome, _a: str) -> None:
        m = rec.mailbox_id
        subs = self._subfolders(cur, m, op.folder_id) if op.subfolders else []
        scope = [op.folder_id, *subs]
        q = ",".join(["%s"] * len(scope))
        cur.execute(f"SELECT id FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s AND"
                    f" folder_id IN ({q}) AND type <> {TYPE_FOLDER} ORDER BY id", (m, *scope))
        victims = [r[0] for r in cur.fetchall()] + subs
        self._hard_delete(cur, rec, victims, out)

    def _tag_ids(self, cur: Any, m: int, names: tuple[str, ...]) -> list[int]:
        if not names:
            return []
        q = ",".join(["%s"] * len(names))
        cur.execute(f"SELECT id FROM {self._t(m, 'tag')} WHERE mailbox_id = %s AND name IN ({q})",
                    (m, *names))
        return [r[0] for r in cur.fetchall()]

    def _db_create_tag(self, cur: Any, rec: Record, op: CreateTag, c: Content, out: Outcome,
                       _a: str) -> None:
        m = rec.mailbox_id
        cur.execute(f"INSERT INTO {self._t(m, 'tag')} (mailbox_id, id, name, color, sequence)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (m, op.tag_id, op.name, op.color, rec.change_id))
        self._bump_item_ids(cur, m, op.tag_id)

    def _db_rename_tag(self, cur: Any, rec: Record, op: RenameTag, c: Content, out: Outcome,
                       _a: str) -> None:
        cur.execute(f"UPDATE {self._t(rec.mailbox_id, 'tag')} SET name = %s, sequence = %s"
                    " WHERE mailbox_id = %s AND id = %s",
                    (op.name, rec.change_id, rec.mailbox_id, op.tag_id))

    def _db_create_message(self, cur: Any, rec: Record, op: CreateMessage, c: Content,
                           out: Outcome, _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        if c.data is None:
            out.error = f"message {op.msg_id}: no blob bytes (link source {op.path} not found)"
            self.warn(out.error)
        f = c.fields
        flags, unread = message_flags(op.flags, f)
        cur.execute(
            f"INSERT INTO {self._t(m, 'mail_item')} (mailbox_id, id, type, parent_id, folder_id,"
            " index_id, imap_id, date, size, locator, blob_digest, unread, flags, sender,"
            " recipients, subject, mod_metadata, change_date, mod_content) VALUES"
            " (%s,%s,%s,NULL,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (m, op.msg_id, TYPE_MESSAGE, op.folder_id, op.msg_id, op.msg_id, op.rcv_date // 1000,
             op.msg_size, "1", op.digest, unread, flags, f.sender[:SENDER_MAX],
             f.recipients[:RECIPIENTS_MAX], f.subject[:SUBJECT_MAX], change, rec.tstamp // 1000,
             change))
        self._add_tags(cur, m, op.tags or (), [op.msg_id])
        self._bump_item_ids(cur, m, op.msg_id)

    def _add_tags(self, cur: Any, m: int, names: tuple[str, ...], item_ids: list[int]) -> None:
        tag_ids = self._tag_ids(cur, m, names)
        if tag_ids and item_ids:
            cur.executemany(f"INSERT IGNORE INTO {self._t(m, 'tagged_item')} (mailbox_id, tag_id,"
                            " item_id) VALUES (%s, %s, %s)",
                            [(m, t, i) for t in tag_ids for i in item_ids])

    def _db_set_item_tags(self, cur: Any, rec: Record, op: SetItemTags, c: Content,
                          out: Outcome, _a: str) -> None:
        m = rec.mailbox_id
        if not op.ids:
            return
        items = self._t(m, "mail_item")
        q = ",".join(["%s"] * len(op.ids))
        if op.flags != FLAG_UNCHANGED:
            cur.execute(f"UPDATE {items} SET flags = (flags & {FLAG_ATTACHED}) | %s, unread = %s"
                        f" WHERE mailbox_id = %s AND id IN ({q})",
                        (op.flags & ~FLAG_UNREAD & ~FLAG_ATTACHED,
                         1 if op.flags & FLAG_UNREAD else 0, m, *op.ids))
        if op.tags is not None:
            cur.execute(f"SELECT id FROM {items} WHERE mailbox_id = %s AND id IN ({q})",
                        (m, *op.ids))
            present = [r[0] for r in cur.fetchall()]
            if present:
                pq = ",".join(["%s"] * len(present))
                cur.execute(f"DELETE FROM {self._t(m, 'tagged_item')} WHERE mailbox_id = %s"
                            f" AND item_id IN ({pq})", (m, *present))
                self._add_tags(cur, m, op.tags, present)
        self._touch(cur, rec, op.ids)

    def _touch(self, cur: Any, rec: Record, ids: tuple[int, ...]) -> None:
        q = ",".join(["%s"] * len(ids))
        cur.execute(f"UPDATE {self._t(rec.mailbox_id, 'mail_item')} SET mod_metadata = %s,"
                    f" change_date = %s WHERE mailbox_id = %s AND id IN ({q})",
                    (rec.change_id, rec.tstamp // 1000, rec.mailbox_id, *ids))

    def _db_alter_item_tag(self, cur: Any, rec: Record, op: AlterItemTag, c: Content,
                           out: Outcome, _a: str) -> None:
        m = rec.mailbox_id
        if not op.ids:
            return
        items = self._t(m, "mail_item")
        q = ",".join(["%s"] * len(op.ids))
        if op.tag == "\\Unread":
            cur.execute(f"UPDATE {items} SET unread = %s WHERE mailbox_id = %s AND id IN ({q})",
                        (1 if op.tagged else 0, m, *op.ids))
        elif op.tag in FLAG_NAMES:
            bit = FLAG_NAMES[op.tag]
            expr = f"flags | {bit}" if op.tagged else f"flags & ~{bit}"
            cur.execute(f"UPDATE {items} SET flags = {expr} WHERE mailbox_id = %s AND id IN ({q})",
                        (m, *op.ids))
        else:
            tag_ids = self._tag_ids(cur, m, (op.tag,))
            if tag_ids:
                if op.tagged:
                    cur.execute(f"SELECT id FROM {items} WHERE mailbox_id = %s AND id IN ({q})",
                                (m, *op.ids))
                    self._add_tags(cur, m, (op.tag,), [r[0] for r in cur.fetchall()])
                else:
                    cur.execute(f"DELETE FROM {self._t(m, 'tagged_item')} WHERE mailbox_id = %s"
                                f" AND tag_id = %s AND item_id IN ({q})", (m, tag_ids[0], *op.ids))
        self._touch(cur, rec, op.ids)

    def _db_move_item(self, cur: Any, rec: Record, op: MoveItem, c: Content, out: Outcome,
                      _a: str) -> None:
        m = rec.mailbox_id
        if not op.ids:
            return
        q = ",".join(["%s"] * len(op.ids))
        parent = ", parent_id = %s" if op.type in (TYPE_FOLDER, TYPE_SEARCH) else ""
        args: tuple[Any, ...] = (op.dest_id,) + ((op.dest_id,) if parent else ())
        cur.execute(f"UPDATE {self._t(m, 'mail_item')} SET folder_id = %s{parent},"
                    f" mod_metadata = %s, change_date = %s WHERE mailbox_id = %s AND id IN ({q})",
                    (*args, rec.change_id, rec.tstamp // 1000, m, *op.ids))

    def _db_delete_item(self, cur: Any, rec: Record, op: DeleteItem, c: Content, out: Outcome,
                        _a: str) -> None:
        m = rec.mailbox_id
        ids = list(op.ids)
        if op.type == TYPE_FOLDER:
            extra: list[int] = []
            for fid in op.ids:
                subs = self._subfolders(cur, m, fid)
                scope = [fid, *subs]
                q = ",".join(["%s"] * len(scope))
                cur.execute(f"SELECT id FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s AND"
                            f" folder_id IN ({q}) AND type <> {TYPE_FOLDER}", (m, *scope))
                extra.extend(r[0] for r in cur.fetchall())
                extra.extend(subs)
            ids = sorted(set(ids + extra))
        self._hard_delete(cur, rec, ids, out)

    def _db_create_contact(self, cur: Any, rec: Record, op: CreateContact, c: Content,
                           out: Outcome, _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        name, email, _body = contact_text(op.attrs)
        digest = blobmod.digest(op.data) if op.data else None
        cur.execute(
            f"INSERT INTO {self._t(m, 'mail_item')} (mailbox_id, id, type, folder_id, index_id,"
            " date, size, locator, blob_digest, flags, sender, subject, metadata, mod_metadata,"
            " change_date, mod_content) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,0,%s,%s,%s,%s,%s,%s)",
            (m, op.contact_id, TYPE_CONTACT, op.folder_id, op.contact_id, rec.tstamp // 1000,
             len(op.data), "1" if op.data else None, digest, email[:SENDER_MAX],
             name[:SUBJECT_MAX], javafmt.bencode_map(dict(op.attrs)), change,
             rec.tstamp // 1000, change))
        self._add_tags(cur, m, op.tags or (), [op.contact_id])
        self._bump_item_ids(cur, m, op.contact_id)

    def _db_modify_contact(self, cur: Any, rec: Record, op: ModifyContact, c: Content,
                           out: Outcome, _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        items = self._t(m, "mail_item")
        cur.execute(f"SELECT mod_content, blob_digest FROM {items} WHERE mailbox_id = %s AND"
                    " id = %s AND type = %s", (m, op.contact_id, TYPE_CONTACT))
        row = cur.fetchone()
        if row is None:
            return
        if row[1]:
            out.blob_deletes.append(self.blobs.path(m, op.contact_id, row[0]))
        name, email, _body = contact_text(op.attrs)
        cur.execute(
            f"UPDATE {items} SET size = %s, locator = %s, blob_digest = %s, sender = %s,"
            " subject = %s, metadata = %s, mod_metadata = %s, change_date = %s, mod_content = %s"
            " WHERE mailbox_id = %s AND id = %s",
            (len(op.data), "1" if op.data else None,
             blobmod.digest(op.data) if op.data else None, email[:SENDER_MAX],
             name[:SUBJECT_MAX], javafmt.bencode_map(dict(op.attrs)), change,
             rec.tstamp // 1000, change, m, op.contact_id))

    def _db_noop(self, cur: Any, rec: Record, op: Op, c: Content, out: Outcome,
                 _a: str) -> None:
        """IndexItem changes only the index; the database just records the change number.
        DeleteItemFromDumpster too: this store deletes for good, as Zimbra does with its
        dumpster off (its default), so the dumpster it purges is empty."""

    # Zimbra's Mailbox.rename/setColor/setDate/resetImapUid/createSearchFolder/
    # modifySearchFolder, as their redo() calls them. Items not found are left alone, as
    # NoSuchItem is ignored in a replay.
    def _db_rename_item(self, cur: Any, rec: Record, op: RenameItem, c: Content, out: Outcome,
                        _a: str) -> None:
        m, date = rec.mailbox_id, rec.tstamp // 1000
        if op.type == TYPE_TAG:
            cur.execute(f"UPDATE {self._t(m, 'tag')} SET name = %s, sequence = %s"
                        " WHERE mailbox_id = %s AND id = %s",
                        (op.name, rec.change_id, m, op.item_id))
            return
        parent = ", parent_id = %s" if op.type in (TYPE_FOLDER, TYPE_SEARCH) else ""
        args: tuple[Any, ...] = (op.folder_id,) if parent else ()
        when = ", date = %s" if op.date is not None else ""
        args += (op.date // 1000,) if op.date is not None else ()
        cur.execute(f"UPDATE {self._t(m, 'mail_item')} SET name = %s, folder_id = %s"
                    f"{parent}{when}, mod_metadata = %s, change_date = %s"
                    " WHERE mailbox_id = %s AND id = %s",
                    (op.name, op.folder_id, *args, rec.change_id, date, m, op.item_id))

    def _db_color_item(self, cur: Any, rec: Record, op: ColorItem, c: Content, out: Outcome,
                       _a: str) -> None:
        m = rec.mailbox_id
        if not op.ids:
            return
        q = ",".join(["%s"] * len(op.ids))
        if op.type == TYPE_TAG:
            cur.execute(f"UPDATE {self._t(m, 'tag')} SET color = %s, sequence = %s"
                        f" WHERE mailbox_id = %s AND id IN ({q})", (op.color, rec.change_id, m,
                                                                  *op.ids))
            return
        items = self._t(m, "mail_item")
        cur.execute(f"SELECT id, metadata FROM {items} WHERE mailbox_id = %s AND id IN ({q})",
                    (m, *op.ids))
        for iid, meta in cur.fetchall():
            cur.execute(f"UPDATE {items} SET metadata = %s WHERE mailbox_id = %s AND id = %s",
                        (with_metadata(meta, c=op.color), m, iid))
        self._touch(cur, rec, op.ids)

    def _db_set_custom_data(self, cur: Any, rec: Record, op: SetCustomData, c: Content,
                            out: Outcome, _a: str) -> None:
        change = custom_data_change(op.custom_key, op.custom_value)
        if not change:
            return
        m, items = rec.mailbox_id, self._t(rec.mailbox_id, "mail_item")
        cur.execute(f"SELECT metadata FROM {items} WHERE mailbox_id = %s AND id = %s",
                    (m, op.item_id))
        row = cur.fetchone()
        if row is not None:
            cur.execute(f"UPDATE {items} SET metadata = %s, mod_metadata = %s, change_date = %s"
                        " WHERE mailbox_id = %s AND id = %s",
                        (with_metadata(row[0], **change), rec.change_id, rec.tstamp // 1000, m,
                         op.item_id))

    def _db_date_item(self, cur: Any, rec: Record, op: DateItem, c: Content, out: Outcome,
                      _a: str) -> None:
        cur.execute(f"UPDATE {self._t(rec.mailbox_id, 'mail_item')} SET date = %s,"
                    " mod_metadata = %s, change_date = %s WHERE mailbox_id = %s AND id = %s",
                    (op.date // 1000, rec.change_id, rec.tstamp // 1000, rec.mailbox_id,
                     op.item_id))

    def _db_set_imap_uid(self, cur: Any, rec: Record, op: SetImapUid, c: Content,
                         out: Outcome, _a: str) -> None:
        # The uids the original run assigned (0 would mean "allocate one": never logged so).
        pairs = [(uid, rec.change_id, rec.tstamp // 1000, rec.mailbox_id, mid)
                 for mid, uid in op.uids if uid > 0]
        if pairs:
            cur.executemany(f"UPDATE {self._t(rec.mailbox_id, 'mail_item')} SET imap_id = %s,"
                            " mod_metadata = %s, change_date = %s WHERE mailbox_id = %s"
                            f" AND id = %s AND type = {TYPE_MESSAGE}", pairs)
        if op.uids:  # uids come from the item id counter (Mailbox.getNextItemId)
            self._bump_item_ids(cur, rec.mailbox_id, max(uid for _, uid in op.uids))

    def _db_create_saved_search(self, cur: Any, rec: Record, op: CreateSavedSearch,
                                c: Content, out: Outcome, _a: str) -> None:
        m, change, date = rec.mailbox_id, rec.change_id, rec.tstamp // 1000
        cur.execute(
            f"INSERT INTO {self._t(m, 'mail_item')} (mailbox_id, id, type, parent_id, folder_id,"
            " date, size, flags, name, metadata, mod_metadata, change_date, mod_content, uuid)"
            " VALUES (%s,%s,%s,%s,%s,%s,0,%s,%s,%s,%s,%s,%s,%s)",
            (m, op.search_id, TYPE_SEARCH, op.folder_id, op.folder_id, date, op.flags, op.name,
             search_metadata(op.query, op.types, op.sort, op.color), change, date, change,
             op.uuid))
        self._bump_item_ids(cur, m, op.search_id)

    def _db_modify_saved_search(self, cur: Any, rec: Record, op: ModifySavedSearch,
                                c: Content, out: Outcome, _a: str) -> None:
        m, items = rec.mailbox_id, self._t(rec.mailbox_id, "mail_item")
        cur.execute(f"SELECT metadata FROM {items} WHERE mailbox_id = %s AND id = %s AND"
                    f" type = {TYPE_SEARCH}", (m, op.search_id))
        row = cur.fetchone()
        if row is None:
            return
        cur.execute(f"UPDATE {items} SET metadata = %s, mod_metadata = %s, change_date = %s"
                    " WHERE mailbox_id = %s AND id = %s",
                    (with_metadata(row[0], q=op.query, t=op.types, s=op.sort), rec.change_id,
                     rec.tstamp // 1000, m, op.search_id))

    # -- blobs ------------------------------------------------------------------------------
    def _apply_blob(self, rec: Record, c: Content, out: Outcome) -> None:
        op, m = rec.op, rec.mailbox_id
        if isinstance(op, CreateMessage):
            if c.data is None:
                out.blob = "missing-source"
                return
            written = self.blobs.ensure(self.blobs.path(m, op.msg_id, rec.change_id), c.data,
                                        op.digest or None)
            out.blob = "written" if written else "present"
        elif isinstance(op, CreateContact | ModifyContact) and op.data:
            written = self.blobs.ensure(self.blobs.path(m, op.contact_id, rec.change_id), op.data)
            out.blob = "written" if written else "present"
        elif isinstance(op, DeleteMailbox):
            self.blobs.remove_mailbox(m)
            out.blob = "written"
        for p in out.blob_deletes:
            self.blobs.delete(p)

    # -- index ------------------------------------------------------------------------------
    def _apply_index(self, rec: Record, c: Content, out: Outcome, mode: IndexMode) -> None:
        op, m, change = rec.op, rec.mailbox_id, rec.change_id
        with self.index.use(m, create=isinstance(op, CreateMailbox)) as idx:
            if idx is None:
                out.index = "missing"
                return
            idx.begin()
            try:
                if idx.hwm >= change:
                    out.index = "skipped"
                    idx.rollback()
                    return
                writer: IndexWriter = idx if mode == "now" else DeferringWriter(idx)
                INDEX_EFFECTS.get(type(op), index_noop)(self, writer, rec, op, c)
                idx.set_hwm(change)
                idx.commit()
                out.index = "applied"
            except BaseException:
                idx.rollback()
                raise

    # -- garbage ----------------------------------------------------------------------------
    def collect_garbage(self, conn: Any, mailbox_ids: list[int] | set[int]) -> int:
        """Remove blob files no database row refers to, for these mailboxes. Returns count.

        The wanted file names come from one statement per mboxgroup table (row by row, so a
        list is never cut short by a length limit: a short list would delete live blobs), and
        each blob folder is compared with them as a set: this pass runs over every mailbox a
        replay touched."""
        removed = 0
        cur = conn.cursor()
        ids = sorted(mailbox_ids)
        live: set[int] = set()
        wanted: dict[int, set[str]] = {}
        for part in (ids[i:i + 1000] for i in range(0, len(ids), 1000)):
            q = ",".join(["%s"] * len(part))
            cur.execute(f"SELECT id FROM zimbra.mailbox WHERE id IN ({q})", part)
            live.update(r[0] for r in cur.fetchall())
        by_group: dict[int, list[int]] = {}
        for m in ids:
            if m in live:
                by_group.setdefault(group_of(m, self.groups), []).append(m)
        for g, ms in sorted(by_group.items()):
            for part in (ms[i:i + 1000] for i in range(0, len(ms), 1000)):
                q = ",".join(["%s"] * len(part))
                cur.execute(f"SELECT mailbox_id, id, mod_content FROM mboxgroup{g}.mail_item"
                            f" WHERE mailbox_id IN ({q}) AND blob_digest IS NOT NULL", part)
                for m, i, mc in cur.fetchall():
                    wanted.setdefault(m, set()).add(f"{i}-{mc}.msg")
        conn.commit()
        for m in ids:
            if m not in live:
                if self.blobs.mailbox_dir(m).exists():
                    self.blobs.remove_mailbox(m)
                    removed += 1
                continue
            keep = wanted.get(m, set())
            for folder, names in self.blobs.mailbox_blob_names(m):
                for name in names - keep:
                    try:
                        os.unlink(f"{folder}/{name}")
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed


# --------------------------------------------------------------------------------------------
# Index effects: one function per op type, the public interface the fast engine's worker uses
# too. `Effects.apply` calls them inside the mailbox index's transaction, after its change-number
# check; the worker calls them on its document-deferring wrapper (`IndexWriter` is what both
# offer). Each reads the op and, for messages, the parsed `Content`; none commits.


class IndexWriter(Protocol):
    """What an index effect writes through: a `MailboxIndex`, or a wrapper with its methods."""

    @property
    def db(self) -> sqlite3.Connection: ...

    def put(self, doc: Doc) -> None: ...

    def put_message(self, item_id: int, type: int, folder_id: int, mod_content: int,
                    fields: Callable[[], MessageFields]) -> None: ...

    def remove(self, ids: Iterable[int]) -> None: ...

    def wipe(self) -> None: ...

    def move(self, ids: Iterable[int], folder_id: int) -> None: ...

    def put_folder(self, folder_id: int, parent_id: int) -> None: ...

    def subfolders(self, folder_id: int, exclude: frozenset[int] = frozenset()) -> list[int]: ...

    def items_in(self, folder_ids: list[int]) -> list[int]: ...

    def remove_folders(self, folder_ids: Iterable[int]) -> None: ...


IndexEffect = Callable[["Effects", IndexWriter, Record, Any, Content], None]


def index_create_mailbox(e: Effects, idx: IndexWriter, rec: Record, op: Op,
    c: Content) -> None:
    for fid, _name, parent, _a, _v in SYSTEM_FOLDERS:
        idx.put_folder(fid, parent)


def index_delete_mailbox(e: Effects, idx: IndexWriter, rec: Record, op: Op,
    c: Content) -> None:
    idx.wipe()


def index_put_folder(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    idx.put_folder(op.folder_id, op.parent_id)


def index_empty_folder(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    subs = idx.subfolders(op.folder_id, SYSTEM_FOLDER_IDS) if op.subfolders else []
    idx.remove(idx.items_in([op.folder_id, *subs]))
    idx.remove_folders(subs)


def index_create_message(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    if c.data is None:
        return
    idx.put_message(op.msg_id, TYPE_MESSAGE, op.folder_id, rec.change_id, lambda: c.fields)


def index_move_item(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    if op.type == TYPE_FOLDER:
        for fid in op.ids:
            idx.put_folder(fid, op.dest_id)
    else:
        idx.move(op.ids, op.dest_id)


def index_delete_item(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    if op.type == TYPE_FOLDER:
        for fid in op.ids:
            tree = [fid, *idx.subfolders(fid, SYSTEM_FOLDER_IDS)]
            idx.remove(idx.items_in(tree))
            idx.remove_folders(tree)
    else:
        idx.remove(op.ids)


def index_contact(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    name, email, body = contact_text(op.attrs)
    if isinstance(op, ModifyContact):
        row = idx.db.execute("SELECT folder_id FROM items WHERE id = ?",
                             (op.contact_id,)).fetchone()
        if row is None:
            return
        folder = row[0]
    else:
        folder = op.folder_id
    idx.put(Doc(op.contact_id, TYPE_CONTACT, folder, rec.change_id, name, email, "", body))


def index_item_from_blob(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    row = idx.db.execute("SELECT type, folder_id, mod_content FROM items WHERE id = ?",
                         (op.item_id,)).fetchone()
    if row is None or row[0] != TYPE_MESSAGE:
        return
    path = e.blobs.path(rec.mailbox_id, op.item_id, row[2])
    try:
        idx.put_message(op.item_id, TYPE_MESSAGE, row[1], row[2],
                        lambda: message_fields(e.blobs.read(path)))
    except FileNotFoundError:
        e.warn(f"IndexItem {rec.mailbox_id}/{op.item_id}: blob missing, left as indexed")


def index_rename_item(e: Effects, idx: IndexWriter, rec: Record, op: Any,
                      c: Content) -> None:
    """RenameItem moves the item (or folder) into `folder_id` too."""
    if op.type == TYPE_FOLDER:
        idx.put_folder(op.item_id, op.folder_id)
    elif op.type not in (TYPE_TAG, TYPE_SEARCH):  # a search holds no items in the index
        idx.move([op.item_id], op.folder_id)


def index_noop(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    pass


_DB_HANDLERS: dict[type, Callable[..., None]] = {
    DeleteMailbox: Effects._db_delete_mailbox,
    CreateFolder: Effects._db_create_folder,
    RenameFolder: Effects._db_rename_folder,
    EmptyFolder: Effects._db_empty_folder,
    CreateTag: Effects._db_create_tag,
    RenameTag: Effects._db_rename_tag,
    CreateMessage: Effects._db_create_message,
    SetItemTags: Effects._db_set_item_tags,
    AlterItemTag: Effects._db_alter_item_tag,
    MoveItem: Effects._db_move_item,
    DeleteItem: Effects._db_delete_item,
    CreateContact: Effects._db_create_contact,
    ModifyContact: Effects._db_modify_contact,
    IndexItem: Effects._db_noop,
    RenameItem: Effects._db_rename_item,
    ColorItem: Effects._db_color_item,
    DateItem: Effects._db_date_item,
    SetImapUid: Effects._db_set_imap_uid,
    CreateSavedSearch: Effects._db_create_saved_search,
    ModifySavedSearch: Effects._db_modify_saved_search,
    DeleteItemFromDumpster: Effects._db_noop,
    SetCustomData: Effects._db_set_custom_data,
}

INDEX_EFFECTS: Mapping[type[Op], IndexEffect] = {
    CreateMailbox: index_create_mailbox,
    DeleteMailbox: index_delete_mailbox,
    CreateFolder: index_put_folder,
    RenameFolder: index_put_folder,
    EmptyFolder: index_empty_folder,
    CreateMessage: index_create_message,
    MoveItem: index_move_item,
    DeleteItem: index_delete_item,
    CreateContact: index_contact,
    ModifyContact: index_contact,
    IndexItem: index_item_from_blob,
    RenameItem: index_rename_item,
}

# Ops whose effect on an index is more than raising its change number.
INDEXED_OPS: frozenset[type[Op]] = frozenset(INDEX_EFFECTS)
