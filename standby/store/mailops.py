"""The database statements of Zimbra's other mail-item ops, as each op's `redo()` calls
`Mailbox`: rename, setColor, setDate, resetImapUid, createSearchFolder/modifySearchFolder,
setCustomData, copy, saveDraft, setConfig/deleteConfig, purgeMessages.

The rules are pure functions the fast engine's model calls too (`itemrules` for copies and
drafts, `mailbox_config` for config sections, `purge` for message lifetimes, `shapes` for
metadata); these methods only select the rows the rules need and write what they return.
Invariant, as for every op: an item the op names that is not there is left alone (NoSuchItem is
ignored in a replay), and an op Zimbra's redo() would refuse changes nothing and is reported
(`ItemSQL.refused`), its change number still counted.
"""

from __future__ import annotations

from typing import Any

from standby.redolog.ops import (
    TYPE_FOLDER,
    TYPE_MESSAGE,
    ColorItem,
    CopyItem,
    CreateSavedSearch,
    DateItem,
    DeleteConfig,
    ModifySavedSearch,
    PurgeOldMessages,
    RenameItem,
    SaveDraft,
    SetConfig,
    SetCustomData,
    SetImapUid,
)
from standby.redolog.record import Record
from standby.store import itemrules, mailbox_config, purge
from standby.store.itemsql import ItemSQL, marks, tombstone_ids
from standby.store.schema import MAIL_ITEM_COLUMNS
from standby.store.shapes import (
    RECIPIENTS_MAX,
    SENDER_MAX,
    SUBJECT_MAX,
    TYPE_SEARCH,
    TYPE_TAG,
    Content,
    Outcome,
    custom_data_change,
    search_metadata,
    with_metadata,
)

# A copy's blob: (copy id, source id, the source's content change number if its blob file is
# the copy's bytes, digest).
CopyBlob = tuple[int, int, int | None, str]


class MailOpStatements(ItemSQL):
    """One `_db_<op>(cur, rec, op, content, outcome, account_id)` method per op."""

    retention: purge.RetentionSource

    def _db_rename_item(self, cur: Any, rec: Record, op: RenameItem, c: Content, out: Outcome,
                        _a: str) -> None:
        if op.type == TYPE_TAG:
            cur.execute(f"UPDATE {self._t(rec.mailbox_id, 'tag')} SET name = %s, sequence = %s"
                        " WHERE mailbox_id = %s AND id = %s",
                        (op.name, rec.change_id, rec.mailbox_id, op.item_id))
            return
        sets: dict[str, Any] = {"name": op.name, "folder_id": op.folder_id}
        if op.type in (TYPE_FOLDER, TYPE_SEARCH):
            sets["parent_id"] = op.folder_id
        if op.date is not None:
            sets["date"] = op.date // 1000
        self.update_items(cur, rec, [op.item_id], sets)

    def _db_color_item(self, cur: Any, rec: Record, op: ColorItem, c: Content, out: Outcome,
                       _a: str) -> None:
        m = rec.mailbox_id
        if not op.ids:
            return
        if op.type == TYPE_TAG:
            cur.execute(f"UPDATE {self._t(m, 'tag')} SET color = %s, sequence = %s"
                        f" WHERE mailbox_id = %s AND id IN ({marks(op.ids)})",
                        (op.color, rec.change_id, m, *op.ids))
            return
        cur.execute(f"SELECT id, metadata FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                    f" AND id IN ({marks(op.ids)})", (m, *op.ids))
        for iid, meta in cur.fetchall():
            self.update_items(cur, rec, [iid], {"metadata": with_metadata(meta, c=op.color)},
                              touch=False)
        self.update_items(cur, rec, op.ids, {})

    def _metadata_of(self, cur: Any, m: int, item_id: int, type: int | None = None) -> Any:
        """The item's metadata column as a 1-tuple, or None if there is no such item."""
        of_type = f" AND type = {int(type)}" if type is not None else ""
        cur.execute(f"SELECT metadata FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s AND"
                    f" id = %s{of_type}", (m, item_id))
        return cur.fetchone()

    def _db_set_custom_data(self, cur: Any, rec: Record, op: SetCustomData, c: Content,
                            out: Outcome, _a: str) -> None:
        change = custom_data_change(op.custom_key, op.custom_value)
        row = self._metadata_of(cur, rec.mailbox_id, op.item_id) if change else None
        if row is not None:
            self.update_items(cur, rec, [op.item_id], {"metadata": with_metadata(row[0],
                                                                                  **change)})

    def _db_date_item(self, cur: Any, rec: Record, op: DateItem, c: Content, out: Outcome,
                      _a: str) -> None:
        self.update_items(cur, rec, [op.item_id], {"date": op.date // 1000})

    def _db_set_imap_uid(self, cur: Any, rec: Record, op: SetImapUid, c: Content,
                         out: Outcome, _a: str) -> None:
        # The uids the original run assigned (0 would mean "allocate one": never logged so).
        for mid, uid in op.uids:
            if uid > 0:
                self.update_items(cur, rec, [mid], {"imap_id": uid}, type=TYPE_MESSAGE)
        if op.uids:  # uids come from the item id counter (Mailbox.getNextItemId)
            self.bump_item_ids(cur, rec.mailbox_id, max(uid for _, uid in op.uids))

    def _db_create_saved_search(self, cur: Any, rec: Record, op: CreateSavedSearch,
                                c: Content, out: Outcome, _a: str) -> None:
        m, change, date = rec.mailbox_id, rec.change_id, rec.tstamp // 1000
        self.insert(cur, m, "mail_item", [{
            "mailbox_id": m, "id": op.search_id, "type": TYPE_SEARCH, "parent_id": op.folder_id,
            "folder_id": op.folder_id, "date": date, "size": 0, "flags": op.flags,
            "name": op.name, "metadata": search_metadata(op.query, op.types, op.sort, op.color),
            "mod_metadata": change, "change_date": date, "mod_content": change,
            "uuid": op.uuid}])
        self.bump_item_ids(cur, m, op.search_id)

    def _db_modify_saved_search(self, cur: Any, rec: Record, op: ModifySavedSearch,
                                c: Content, out: Outcome, _a: str) -> None:
        row = self._metadata_of(cur, rec.mailbox_id, op.search_id, TYPE_SEARCH)
        if row is not None:
            self.update_items(cur, rec, [op.search_id], {"metadata": with_metadata(
                row[0], q=op.query, t=op.types, s=op.sort)})

    def _db_copy_item(self, cur: Any, rec: Record, op: CopyItem, c: Content, out: Outcome,
                      _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        rows = self.select_rows(cur, m, [op.dest_folder_id, *(i for e in op.entries
                                                              for i in e[:2])])
        why, error = itemrules.copy_refusal(op, itemrules.row_types(rows))
        if why:
            self.refused(rec, why, out, error)
            c.refused = True
            return
        for src_id, copy_id, uuid in op.entries:
            src = rows[src_id]
            flags = itemrules.source_flags(src, op.dest_folder_id)
            if flags != src[itemrules.C["flags"]]:  # \Copied: a system flag, no new change
                self.update_items(cur, rec, [src_id], {"flags": flags}, touch=False)
                src[itemrules.C["flags"]] = flags
            self.insert(cur, m, "mail_item", [dict(zip(MAIL_ITEM_COLUMNS, itemrules.copy_row(
                src, copy_id, uuid, op.dest_folder_id, change, rec.tstamp)))])
            cur.execute(f"INSERT INTO {self._t(m, 'tagged_item')} (mailbox_id, tag_id, item_id)"
                        f" SELECT mailbox_id, tag_id, %s FROM {self._t(m, 'tagged_item')}"
                        " WHERE mailbox_id = %s AND item_id = %s", (copy_id, m, src_id))
        self.bump_item_ids(cur, m, max(e[1] for e in op.entries))

    def _db_save_draft(self, cur: Any, rec: Record, op: SaveDraft, c: Content, out: Outcome,
                       _a: str) -> None:
        m, change = rec.mailbox_id, rec.change_id
        row = self.select_rows(cur, m, [op.msg_id]).get(op.msg_id)
        if row is None:
            return  # NoSuchItem, ignored in a replay
        if not itemrules.is_draft(row):
            self.refused(rec, f"item {op.msg_id} is not a draft", out)
            c.refused = True
            return
        if c.data is None:
            self.refused(rec, f"draft {op.msg_id}: no blob bytes (link source {op.path} not "
                         "found)", out)
        f = c.fields
        new = dict(zip(MAIL_ITEM_COLUMNS, itemrules.draft_row(
            row, size=op.msg_size, digest=op.digest, change=change, tstamp=rec.tstamp,
            has_attachment=f.has_attachment)))
        new.update(sender=f.sender[:SENDER_MAX], recipients=f.recipients[:RECIPIENTS_MAX],
                   subject=f.subject[:SUBJECT_MAX])
        if row[itemrules.C["blob_digest"]]:
            out.blob_deletes.append(self.blobs.path(m, op.msg_id, row[itemrules.C["mod_content"]]))
        # The whole row is rewritten (its change number and time are the draft_row's).
        self.update_items(cur, rec, [op.msg_id],
                          {k: v for k, v in new.items() if k not in ("mailbox_id", "id")},
                          touch=False)
        self.bump_item_ids(cur, m, op.imap_id)  # the uid came from the item id counter

    def _db_config(self, cur: Any, rec: Record, op: SetConfig | DeleteConfig, c: Content,
                   out: Outcome, _a: str) -> None:
        why = mailbox_config.apply(cur, rec.mailbox_id, op)
        if why:
            self.refused(rec, why, out)

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
        self.hard_delete(cur, rec, c.deleted, out)

    # What the blob and index volumes learn from the database about a copy or a purge, which
    # holds it whether it applied the op now or before.
    def _tombstone_ids(self, conn: Any, rec: Record) -> list[int]:
        """The ids an op deleted, from its tombstones (for a volume behind the database)."""
        out = tombstone_ids(conn.cursor(), self.groups, rec.mailbox_id, rec.change_id)
        conn.commit()
        return out

    def _copy_blobs(self, conn: Any, rec: Record, op: CopyItem) -> list[CopyBlob]:
        """The blobs the database's copies of this op need (a copy deleted or changed since
        needs none)."""
        cur = conn.cursor()
        rows = self.select_rows(cur, rec.mailbox_id, [i for e in op.entries for i in e[:2]])
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
