"""The database side of each op's effect: one transaction per op, gated by the change number.

`Statements` is the part of `effects.Effects` that runs SQL: `_apply_db` takes the mailbox row
FOR UPDATE, skips the op if its change number is not above `mailbox.change_checkpoint`, runs the
op's statements (`_DB_HANDLERS`, one method per op type) and raises the checkpoint in the same
transaction; a mailbox that was deleted is remembered in `deleted_account`, so a replayed
CreateMailbox does not bring it back. The shapes the fast engine's model writes too (system
folders, folder and search metadata, contact text, message flags) are defined here once.

Items and flags follow Zimbra: the `unread` column is kept apart from `flags`; tag membership is
in `tagged_item`; cached counters (folder and tag counts, mailbox size and contact count) are
left at zero because they are derivable. Items an op names that are not there are left alone,
as a replay ignores NoSuchItem; an op Zimbra's redo() would refuse (`_refused`) changes nothing
and is reported, its change number still counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standby.redolog import javafmt, metadata
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
    ColorItem,
    CopyItem,
    CreateContact,
    CreateFolder,
    CreateMailbox,
    CreateMessage,
    CreateSavedSearch,
    CreateTag,
    DateItem,
    DeleteConfig,
    DeleteItem,
    DeleteItemFromDumpster,
    DeleteMailbox,
    EmptyFolder,
    IndexItem,
    ModifyContact,
    ModifySavedSearch,
    MoveItem,
    PurgeOldMessages,
    RenameFolder,
    RenameItem,
    RenameTag,
    SaveDraft,
    SetConfig,
    SetCustomData,
    SetImapUid,
    SetItemTags,
)
from standby.redolog.record import Op, Record
from standby.store import blobs as blobmod
from standby.store import itemrules, mailbox_config, purge
from standby.store.blobs import BlobStore
from standby.store.mime import MessageFields, message_fields
from standby.store.schema import INDEX_VOLUME_ID, MAIL_ITEM_COLUMNS, SCHEMA_VERSION, group_of

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
TYPE_TAG, TYPE_SEARCH = 3, 2


@dataclass
class Outcome:
    """What one op did to each volume."""

    db: str = "none"  # applied | skipped | missing | none
    blob: str = "none"  # written | present | missing-source | none
    index: str = "none"  # applied | skipped | missing | none
    blob_deletes: list[Path] = field(default_factory=list)
    error: str | None = None


class Content:
    """Lazily parsed message bytes and fields, shared by the three volumes for one op, with
    what the database step learnt that the others need: the ids a purge deleted (`deleted`),
    the blobs a copy needs (`copies`: copy id, source id, source's content change number if
    its blob is the copy's, digest), and whether it refused the op (`refused`: Zimbra's redo()
    would fail, so the index leaves it too; a database that applied the op before is taken to
    have accepted it, as a committed op was valid on the primary)."""

    __slots__ = ("_fields", "copies", "data", "deleted", "refused")

    def __init__(self, data: bytes | None, *, deleted: list[int] | None = None,
                 refused: bool = False) -> None:
        self.data = data
        self._fields: MessageFields | None = None
        self.deleted = deleted
        self.refused = refused
        self.copies: list[tuple[int, int, int | None, str]] = []

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


def tombstone_ids(cur: Any, groups: int, m: int, change: int) -> list[int]:
    """The ids the op with this change number deleted, as its tombstones record them."""
    cur.execute(f"SELECT ids FROM mboxgroup{group_of(m, groups)}.tombstone WHERE"
                " mailbox_id = %s AND sequence = %s", (m, change))
    return sorted({int(i) for (ids,) in cur.fetchall() for i in (ids or "").split(",") if i})


class Statements:
    """The database statements of every op (mixed into `effects.Effects`, which sets these)."""

    groups: int
    blobs: BlobStore
    retention: purge.RetentionSource
    warn: Callable[[str], None]

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
        cur.execute(f"DELETE FROM {mailbox_config.TABLE} WHERE mailbox_id = %s", (m,))
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

    # Zimbra's Mailbox.copy/saveDraft/setConfig/deleteConfig/purgeMessages, as their redo()
    # calls them (the rules in `itemrules`, `mailbox_config` and `purge`).
    def _select_rows(self, cur: Any, m: int, ids: Iterable[int]) -> dict[int, list[Any]]:
        want = sorted(set(ids))
        if not want:
            return {}
        cur.execute(f"SELECT {', '.join(MAIL_ITEM_COLUMNS)} FROM {self._t(m, 'mail_item')}"
                    f" WHERE mailbox_id = %s AND id IN ({','.join(['%s'] * len(want))})",
                    (m, *want))
        return {r[1]: list(r) for r in cur.fetchall()}

    def _db_copy_item(self, cur: Any, rec: Record, op: CopyItem, c: Content, out: Outcome,
                      _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        items = self._t(m, "mail_item")
        rows = self._select_rows(cur, m, [op.dest_folder_id, *(i for e in op.entries
                                                               for i in e[:2])])
        why, error = itemrules.copy_refusal(op, itemrules.row_types(rows))
        if why:
            self._refused(rec, why, out, error)
            c.refused = True
            return
        cols = ", ".join(MAIL_ITEM_COLUMNS)
        marks = ",".join(["%s"] * len(MAIL_ITEM_COLUMNS))
        for src_id, copy_id, uuid in op.entries:
            src = rows[src_id]
            flags = itemrules.source_flags(src, op.dest_folder_id)
            if flags != src[itemrules.C["flags"]]:  # \Copied: a system flag, no new change
                cur.execute(f"UPDATE {items} SET flags = %s WHERE mailbox_id = %s AND id = %s",
                            (flags, m, src_id))
                src[itemrules.C["flags"]] = flags
            cur.execute(f"INSERT INTO {items} ({cols}) VALUES ({marks})",
                        itemrules.copy_row(src, copy_id, uuid, op.dest_folder_id, change,
                                           rec.tstamp))
            cur.execute(f"INSERT INTO {self._t(m, 'tagged_item')} (mailbox_id, tag_id, item_id)"
                        f" SELECT mailbox_id, tag_id, %s FROM {self._t(m, 'tagged_item')}"
                        " WHERE mailbox_id = %s AND item_id = %s", (copy_id, m, src_id))
        self._bump_item_ids(cur, m, max(e[1] for e in op.entries))

    def _refused(self, rec: Record, why: str, out: Outcome, error: bool = True) -> None:
        """An op Zimbra's redo() would refuse changes nothing; the change number still counts."""
        msg = f"{rec.op.NAME} mailbox {rec.mailbox_id} change {rec.change_id}: {why}"
        self.warn(msg)
        if error:
            out.error = msg

    def _db_save_draft(self, cur: Any, rec: Record, op: SaveDraft, c: Content, out: Outcome,
                       _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        row = self._select_rows(cur, m, [op.msg_id]).get(op.msg_id)
        if row is None:
            return  # NoSuchItem, ignored in a replay
        if not itemrules.is_draft(row):
            self._refused(rec, f"item {op.msg_id} is not a draft", out)
            c.refused = True
            return
        if c.data is None:
            self._refused(rec, f"draft {op.msg_id}: no blob bytes (link source {op.path} not "
                          "found)", out)
        f = c.fields
        new = itemrules.draft_row(row, size=op.msg_size, digest=op.digest, change=change,
                                  tstamp=rec.tstamp, has_attachment=f.has_attachment)
        C = itemrules.C
        new[C["sender"]], new[C["recipients"]] = f.sender[:SENDER_MAX], f.recipients[:RECIPIENTS_MAX]
        new[C["subject"]] = f.subject[:SUBJECT_MAX]
        if row[C["blob_digest"]]:
            out.blob_deletes.append(self.blobs.path(m, op.msg_id, row[C["mod_content"]]))
        keep = ("mailbox_id", "id")
        sets = ", ".join(f"{col} = %s" for col in MAIL_ITEM_COLUMNS if col not in keep)
        cur.execute(f"UPDATE {self._t(m, 'mail_item')} SET {sets} WHERE mailbox_id = %s"
                    " AND id = %s", (*(v for col, v in zip(MAIL_ITEM_COLUMNS, new)
                                       if col not in keep), m, op.msg_id))
        self._bump_item_ids(cur, m, op.imap_id)  # the uid came from the item id counter

    def _db_config(self, cur: Any, rec: Record, op: SetConfig | DeleteConfig, c: Content,
                   out: Outcome, _a: str) -> None:
        why = mailbox_config.apply(cur, rec.mailbox_id, op)
        if why:
            self._refused(rec, why, out)

    def _db_purge(self, cur: Any, rec: Record, op: PurgeOldMessages, c: Content,
                  out: Outcome, account_id: str) -> None:
        lt = self.retention.lifetimes(account_id)
        roots, every_message = purge.scope(lt)
        c.deleted = []
        if not roots and not every_message:
            return
        m, items = rec.mailbox_id, self._t(rec.mailbox_id, "mail_item")
        cols = "id, type, folder_id, date, change_date, unread"
        cur.execute(f"SELECT {cols} FROM {items} WHERE mailbox_id = %s AND type = {TYPE_FOLDER}",
                    (m,))
        rows = {r[0]: purge.Item(*r) for r in cur.fetchall()}
        folders = {i: r.folder_id for i, r in rows.items()}
        places = sorted({f for root in roots for f in purge.hierarchy(folders, root)})
        where = [f"type = {TYPE_MESSAGE}"] if every_message else []
        if places:
            where.append(f"folder_id IN ({','.join(map(str, places))})")
        if where:
            cur.execute(f"SELECT {cols} FROM {items} WHERE mailbox_id = %s AND type <>"
                        f" {TYPE_FOLDER} AND ({' OR '.join(where)})", (m,))
            rows.update((r[0], purge.Item(*r)) for r in cur.fetchall())
        c.deleted = purge.victims(rows.values(), lt, rec.tstamp)
        self._hard_delete(cur, rec, c.deleted, out)

    def _tombstone_ids(self, conn: Any, rec: Record) -> list[int]:
        """The ids an op deleted, from its tombstones (for a volume behind the database)."""
        out = tombstone_ids(conn.cursor(), self.groups, rec.mailbox_id, rec.change_id)
        conn.commit()
        return out

    def _copy_blobs(self, conn: Any, rec: Record, op: CopyItem) -> list[tuple[int, int, int | None,
                                                                              str]]:
        """The blobs the database's copies of this op need (a copy deleted or changed since
        needs none)."""
        cur = conn.cursor()
        rows = self._select_rows(cur, rec.mailbox_id, [i for e in op.entries for i in e[:2]])
        conn.commit()
        C = itemrules.C
        out = []
        for src_id, copy_id, _uuid in op.entries:
            r = rows.get(copy_id)
            if r is None or r[C["mod_content"]] != rec.change_id or not r[C["blob_digest"]]:
                continue
            src = rows.get(src_id)
            same = src is not None and src[C["blob_digest"]] == r[C["blob_digest"]]
            out.append((copy_id, src_id, src[C["mod_content"]] if src and same else None,
                        r[C["blob_digest"]]))
        return out


_DB_HANDLERS: dict[type, Callable[..., None]] = {
    DeleteMailbox: Statements._db_delete_mailbox,
    CreateFolder: Statements._db_create_folder,
    RenameFolder: Statements._db_rename_folder,
    EmptyFolder: Statements._db_empty_folder,
    CreateTag: Statements._db_create_tag,
    RenameTag: Statements._db_rename_tag,
    CreateMessage: Statements._db_create_message,
    SetItemTags: Statements._db_set_item_tags,
    AlterItemTag: Statements._db_alter_item_tag,
    MoveItem: Statements._db_move_item,
    DeleteItem: Statements._db_delete_item,
    CreateContact: Statements._db_create_contact,
    ModifyContact: Statements._db_modify_contact,
    IndexItem: Statements._db_noop,
    RenameItem: Statements._db_rename_item,
    ColorItem: Statements._db_color_item,
    DateItem: Statements._db_date_item,
    SetImapUid: Statements._db_set_imap_uid,
    CreateSavedSearch: Statements._db_create_saved_search,
    ModifySavedSearch: Statements._db_modify_saved_search,
    DeleteItemFromDumpster: Statements._db_noop,
    SetCustomData: Statements._db_set_custom_data,
    CopyItem: Statements._db_copy_item,
    SaveDraft: Statements._db_save_draft,
    SetConfig: Statements._db_config,
    DeleteConfig: Statements._db_config,
    PurgeOldMessages: Statements._db_purge,
}
