"""The database side of each op's effect: one transaction per op, gated by the change number.

`Statements` is the part of `effects.Effects` that runs SQL: `_apply_db` takes the mailbox row
FOR UPDATE, skips the op if its change number is not above `mailbox.change_checkpoint`, runs the
op's statements (`_DB_HANDLERS`, one method per op type) and raises the checkpoint in the same
transaction; a mailbox that was deleted is remembered in `deleted_account`, so a replayed
CreateMailbox does not bring it back. This module holds the ops the store itself writes
(mailboxes, folders, tags, messages, contacts, moves and deletes); Zimbra's other mail-item ops
are in `mailops`, the statement shapes they share in `itemsql`, the row shapes the fast engine's
model writes too in `shapes`.

Items and flags follow Zimbra: the `unread` column is kept apart from `flags`; tag membership is
in `tagged_item`; cached counters (folder and tag counts, mailbox size and contact count) are
left at zero because they are derivable. Items an op names that are not there are left alone,
as a replay ignores NoSuchItem; an op Zimbra's redo() would refuse (`ItemSQL.refused`) changes
nothing and is reported, its change number still counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from standby.redolog import javafmt
from standby.redolog.ops import (
    FLAG_ATTACHED,
    FLAG_NAMES,
    FLAG_UNCHANGED,
    FLAG_UNREAD,
    TYPE_CONTACT,
    TYPE_FOLDER,
    TYPE_MESSAGE,
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
from standby.store import mailbox_config
from standby.store.itemsql import marks
from standby.store.itemsql import tombstone_ids as tombstone_ids
from standby.store.mailops import MailOpStatements
from standby.store.schema import INDEX_VOLUME_ID, SCHEMA_VERSION, group_of
from standby.store.shapes import FIRST_USER_ID as FIRST_USER_ID  # the replay's bulk loader's
from standby.store.shapes import (
    RECIPIENTS_MAX,
    SENDER_MAX,
    SUBJECT_MAX,
    SYSTEM_FOLDERS,
    TYPE_SEARCH,
    Content,
    Outcome,
    contact_text,
    folder_metadata,
    message_flags,
)

# The tables a mailbox's rows live in, deleted with the mailbox (children first).
MAILBOX_TABLES = ("tagged_item", "tag", "tombstone", "revision", "mail_item")


class Statements(MailOpStatements):
    """The database statements of every op (mixed into `effects.Effects`, which sets the
    attributes `ItemSQL` declares)."""

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
        self.insert(cur, m, "mail_item", [{
            "mailbox_id": m, "id": fid, "type": TYPE_FOLDER, "parent_id": parent,
            "folder_id": parent, "date": date, "size": 0,
            "flags": 0x200000 if fid in (10, 15) else 0, "name": name,
            "metadata": folder_metadata(view, 0, attrs, ""), "mod_metadata": change,
            "change_date": date, "mod_content": change}
            for fid, name, parent, attrs, view in SYSTEM_FOLDERS])
        cur.execute("UPDATE zimbra.current_volumes SET next_mailbox_id ="
                    " GREATEST(next_mailbox_id, %s)", (m + 1,))
        return "applied"

    def _db_delete_mailbox(self, cur: Any, rec: Record, op: Op, c: Content, out: Outcome,
                           account_id: str) -> None:
        m = rec.mailbox_id
        for table in MAILBOX_TABLES:
            cur.execute(f"DELETE FROM {self._t(m, table)} WHERE mailbox_id = %s", (m,))
        cur.execute(f"DELETE FROM {mailbox_config.TABLE} WHERE mailbox_id = %s", (m,))
        cur.execute("DELETE FROM zimbra.mailbox WHERE id = %s", (m,))
        cur.execute("INSERT INTO zimbra.deleted_account (email, account_id, mailbox_id,"
                    " deleted_at) VALUES (%s, %s, %s, %s)",
                    (None, account_id, m, rec.tstamp // 1000))

    def _db_create_folder(self, cur: Any, rec: Record, op: CreateFolder, c: Content,
                          out: Outcome, _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        self.insert(cur, m, "mail_item", [{
            "mailbox_id": m, "id": op.folder_id, "type": TYPE_FOLDER, "parent_id": op.parent_id,
            "folder_id": op.parent_id,
            "date": (op.date if op.date is not None else rec.tstamp) // 1000, "size": 0,
            "flags": op.flags, "name": op.name,
            "metadata": folder_metadata(op.view, op.color, op.attrs, op.url),
            "mod_metadata": change, "change_date": rec.tstamp // 1000, "mod_content": change,
            "uuid": op.uuid}])
        self.bump_item_ids(cur, m, op.folder_id)

    def _db_rename_folder(self, cur: Any, rec: Record, op: RenameFolder, c: Content,
                          out: Outcome, _a: str) -> None:
        self.update_items(cur, rec, [op.folder_id], {
            "name": op.name, "parent_id": op.parent_id, "folder_id": op.parent_id},
            type=TYPE_FOLDER)

    def _db_empty_folder(self, cur: Any, rec: Record, op: EmptyFolder, c: Content,
                         out: Outcome, _a: str) -> None:
        m = rec.mailbox_id
        subs = self.subfolders(cur, m, op.folder_id) if op.subfolders else []
        self.hard_delete(cur, rec, self.items_in(cur, m, [op.folder_id, *subs]) + subs, out)

    def _db_create_tag(self, cur: Any, rec: Record, op: CreateTag, c: Content, out: Outcome,
                       _a: str) -> None:
        m = rec.mailbox_id
        self.insert(cur, m, "tag", [{"mailbox_id": m, "id": op.tag_id, "name": op.name,
                                     "color": op.color, "sequence": rec.change_id}])
        self.bump_item_ids(cur, m, op.tag_id)

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
        self.insert(cur, m, "mail_item", [{
            "mailbox_id": m, "id": op.msg_id, "type": TYPE_MESSAGE, "parent_id": None,
            "folder_id": op.folder_id, "index_id": op.msg_id, "imap_id": op.msg_id,
            "date": op.rcv_date // 1000, "size": op.msg_size, "locator": "1",
            "blob_digest": op.digest, "unread": unread, "flags": flags,
            "sender": f.sender[:SENDER_MAX], "recipients": f.recipients[:RECIPIENTS_MAX],
            "subject": f.subject[:SUBJECT_MAX], "mod_metadata": change,
            "change_date": rec.tstamp // 1000, "mod_content": change}])
        self.add_tags(cur, m, op.tags or (), [op.msg_id])
        self.bump_item_ids(cur, m, op.msg_id)

    def _db_set_item_tags(self, cur: Any, rec: Record, op: SetItemTags, c: Content,
                          out: Outcome, _a: str) -> None:
        m = rec.mailbox_id
        if not op.ids:
            return
        items, q = self._t(m, "mail_item"), marks(op.ids)
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
                cur.execute(f"DELETE FROM {self._t(m, 'tagged_item')} WHERE mailbox_id = %s"
                            f" AND item_id IN ({marks(present)})", (m, *present))
                self.add_tags(cur, m, op.tags, present)
        self.update_items(cur, rec, op.ids, {})

    def _db_alter_item_tag(self, cur: Any, rec: Record, op: AlterItemTag, c: Content,
                           out: Outcome, _a: str) -> None:
        m = rec.mailbox_id
        if not op.ids:
            return
        items, q = self._t(m, "mail_item"), marks(op.ids)
        if op.tag == "\\Unread":
            cur.execute(f"UPDATE {items} SET unread = %s WHERE mailbox_id = %s AND id IN ({q})",
                        (1 if op.tagged else 0, m, *op.ids))
        elif op.tag in FLAG_NAMES:
            bit = FLAG_NAMES[op.tag]
            expr = f"flags | {bit}" if op.tagged else f"flags & ~{bit}"
            cur.execute(f"UPDATE {items} SET flags = {expr} WHERE mailbox_id = %s AND id IN ({q})",
                        (m, *op.ids))
        else:
            tag_ids = self.tag_ids(cur, m, (op.tag,))
            if tag_ids:
                if op.tagged:
                    cur.execute(f"SELECT id FROM {items} WHERE mailbox_id = %s AND id IN ({q})",
                                (m, *op.ids))
                    self.add_tags(cur, m, (op.tag,), [r[0] for r in cur.fetchall()])
                else:
                    cur.execute(f"DELETE FROM {self._t(m, 'tagged_item')} WHERE mailbox_id = %s"
                                f" AND tag_id = %s AND item_id IN ({q})", (m, tag_ids[0], *op.ids))
        self.update_items(cur, rec, op.ids, {})

    def _db_move_item(self, cur: Any, rec: Record, op: MoveItem, c: Content, out: Outcome,
                      _a: str) -> None:
        sets = {"folder_id": op.dest_id}
        if op.type in (TYPE_FOLDER, TYPE_SEARCH):
            sets["parent_id"] = op.dest_id
        self.update_items(cur, rec, op.ids, sets)

    def _db_delete_item(self, cur: Any, rec: Record, op: DeleteItem, c: Content, out: Outcome,
                        _a: str) -> None:
        m = rec.mailbox_id
        ids = list(op.ids)
        if op.type == TYPE_FOLDER:
            extra: list[int] = []
            for fid in op.ids:
                subs = self.subfolders(cur, m, fid)
                extra.extend(self.items_in(cur, m, [fid, *subs]))
                extra.extend(subs)
            ids = sorted(set(ids + extra))
        self.hard_delete(cur, rec, ids, out)

    def _contact_columns(self, op: CreateContact | ModifyContact) -> dict[str, Any]:
        """The columns a contact's fields and vCard blob set (create and modify alike)."""
        name, email, _body = contact_text(op.attrs)
        return {"size": len(op.data), "locator": "1" if op.data else None,
                "blob_digest": blobmod.digest(op.data) if op.data else None,
                "sender": email[:SENDER_MAX], "subject": name[:SUBJECT_MAX],
                "metadata": javafmt.bencode_map(dict(op.attrs))}

    def _db_create_contact(self, cur: Any, rec: Record, op: CreateContact, c: Content,
                           out: Outcome, _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        self.insert(cur, m, "mail_item", [{
            "mailbox_id": m, "id": op.contact_id, "type": TYPE_CONTACT,
            "folder_id": op.folder_id, "index_id": op.contact_id, "date": rec.tstamp // 1000,
            "flags": 0, **self._contact_columns(op), "mod_metadata": change,
            "change_date": rec.tstamp // 1000, "mod_content": change}])
        self.add_tags(cur, m, op.tags or (), [op.contact_id])
        self.bump_item_ids(cur, m, op.contact_id)

    def _db_modify_contact(self, cur: Any, rec: Record, op: ModifyContact, c: Content,
                           out: Outcome, _a: str) -> None:
        m = rec.mailbox_id
        cur.execute(f"SELECT mod_content, blob_digest FROM {self._t(m, 'mail_item')} WHERE"
                    " mailbox_id = %s AND id = %s AND type = %s", (m, op.contact_id, TYPE_CONTACT))
        row = cur.fetchone()
        if row is None:
            return
        if row[1]:
            out.blob_deletes.append(self.blobs.path(m, op.contact_id, row[0]))
        self.update_items(cur, rec, [op.contact_id],
                          {**self._contact_columns(op), "mod_content": rec.change_id})

    def _db_noop(self, cur: Any, rec: Record, op: Op, c: Content, out: Outcome,
                 _a: str) -> None:
        """IndexItem changes only the index; the database just records the change number.
        DeleteItemFromDumpster too: this store deletes for good, as Zimbra does with its
        dumpster off (its default), so the dumpster it purges is empty."""


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
