"""An in-memory model of one mailbox's database rows, folding a run of ops into net row changes.

The fast engine applies a mailbox's ops here instead of statement by statement, then writes only
the final rows (`MailboxModel.changes`). Each op's effect mirrors the store's statements
(`store.statements`, `store.mailops`) exactly — the same gate (the op runs only if its change
number is above the mailbox's `change_checkpoint`), the same columns, the same tombstones — so
both engines reach the same state; the tests and the benchmark compare their digests.

Rows the ops touch but did not create are loaded from the database first (`RowSource`), in bulk:
every id an op names (`prefetch`), the folder tree and the items of a folder scope when an
EmptyFolder or folder delete needs them, and the mailbox's tags. A mailbox created within the run
needs no loading at all (`complete`).

Message rows need fields parsed from the message (sender, recipients, subject, whether it has an
attachment); they are asked for lazily (`fields_for`, by the change number of the op whose body
the row holds: a CreateMessage, a SaveDraft, or the source's for a copy), only for messages that
survive the run. CopyItem, SaveDraft and PurgeOldMessages follow `store.itemrules` and
`store.purge`, the same rules the statement engine calls; SetConfig/DeleteConfig are not folded
but kept in order for the bulk writer (`store.mailbox_config`). What the worker needs besides
rows is recorded: where each copy's bytes come from (`copy_source`) and the ids each purge
deleted (`purged`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
    AlterItemTag,
    CopyItem,
    CreateContact,
    CreateFolder,
    CreateMailbox,
    CreateMessage,
    CreateTag,
    DeleteConfig,
    DeleteItem,
    DeleteMailbox,
    EmptyFolder,
    IndexItem,
    ModifyContact,
    MoveItem,
    PurgeOldMessages,
    RenameFolder,
    RenameTag,
    SaveDraft,
    SetConfig,
    ColorItem,
    CreateSavedSearch,
    DateItem,
    DeleteItemFromDumpster,
    ModifySavedSearch,
    RenameItem,
    SetCustomData,
    SetImapUid,
    SetItemTags,
)
from standby.redolog.record import Op
from standby.store import blobs as blobmod
from standby.store import itemrules, mailbox_config, purge
from standby.store.shapes import (
    FIRST_USER_ID,
    RECIPIENTS_MAX,
    SENDER_MAX,
    SUBJECT_MAX,
    SYSTEM_FOLDER_IDS,
    SYSTEM_FOLDERS,
    TYPE_SEARCH,
    TYPE_TAG,
    contact_text,
    custom_data_change,
    folder_metadata,
    search_metadata,
    with_metadata,
)
from standby.store.mime import RowFields
from standby.store.schema import MAIL_ITEM_COLUMNS, TAG_COLUMNS

C = {name: i for i, name in enumerate(MAIL_ITEM_COLUMNS)}
ID, TYPE, PARENT, FOLDER = C["id"], C["type"], C["parent_id"], C["folder_id"]
UNREAD, FLAGS, MOD_META, CHANGE_DATE = C["unread"], C["flags"], C["mod_metadata"], C["change_date"]
MOD_CONTENT, DIGEST, NAME = C["mod_content"], C["blob_digest"], C["name"]
NCOLS = len(MAIL_ITEM_COLUMNS)


class RowSource(Protocol):
    """Reads a mailbox's rows as they are in the database before the run."""

    def items(self, m: int, ids: Iterable[int]) -> list[list[Any]]: ...
    def items_in_folders(self, m: int, folder_ids: list[int]) -> list[list[Any]]: ...
    def folders(self, m: int) -> list[list[Any]]: ...
    def tagged(self, m: int, item_ids: Iterable[int]) -> list[tuple[int, int]]: ...
    def tags(self, m: int) -> list[list[Any]]: ...


ConfigOp = SetConfig | DeleteConfig


@dataclass
class Changes:
    """What to write for one mailbox after the run."""

    mailbox_id: int
    create_mailbox: tuple[Any, ...] | None = None  # (account_id,) when created in the run
    created: bool = False
    wipe: bool = False  # DeleteMailbox applied: remove every row of the mailbox
    account_id: str | None = None
    deleted_at: int = 0
    hwm: int = 0
    item_ckpt: int = 0
    hwm_changed: bool = False
    delete_items: list[int] = field(default_factory=list)  # pre-existing rows to remove
    rows: list[list[Any]] = field(default_factory=list)  # final rows to insert
    delete_tagged_for: list[int] = field(default_factory=list)
    tagged: list[tuple[int, int, int]] = field(default_factory=list)
    delete_tags: list[int] = field(default_factory=list)
    tags: list[list[Any]] = field(default_factory=list)
    tombstones: list[tuple[Any, ...]] = field(default_factory=list)
    config: list[ConfigOp] = field(default_factory=list)  # run in order after the rows


@dataclass
class Counts:
    applied: int = 0
    skipped: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)


class MailboxModel:
    def __init__(self, m: int, *, exists: bool, hwm: int, item_ckpt: int,
                 account_id: str | None, deleted_before: bool, source: RowSource,
                 fields_for: Callable[[int], RowFields],
                 retention: purge.RetentionSource | None = None) -> None:
        self.m = m
        self.present = exists
        self.existed = exists
        self.deleted_before = deleted_before
        self.hwm = hwm
        self.hwm0 = hwm
        self.item_ckpt = item_ckpt
        self.account_id = account_id
        self.source = source
        self.fields_for = fields_for
        self.complete = False
        self.created = False
        self.wiped = False
        self.deleted_at = 0
        self.rows: dict[int, list[Any] | None] = {}
        self.pre: set[int] = set()  # ids present in the database before the run
        self.pre_blob: dict[int, int] = {}  # pre-existing id with a blob -> its mod_content
        self.dirty: set[int] = set()
        self.tagged: dict[int, set[int]] = {}
        self.tags: dict[int, list[Any]] | None = None
        self.tags_pre: set[int] = set()
        self.tags_dirty: set[int] = set()
        self.tombstones: list[tuple[Any, ...]] = []
        self.folders_loaded = False
        self.scopes_loaded: set[int] = set()
        self.attach_pending: set[int] = set()
        self.counts = Counts()
        self.retention: purge.RetentionSource = retention or purge.Retention()
        # item -> change number of the op whose body it holds (set in this run)
        self.content: dict[int, int] = {}
        # copy -> (source, content key of the source or None for its blob file, its mod_content)
        self.copy_source: dict[int, tuple[int, int | None, int]] = {}
        self.purged: dict[int, list[int]] = {}  # change -> ids a purge deleted
        self.refused: set[int] = set()  # changes of ops Zimbra's redo() would refuse
        self.config: list[ConfigOp] = []

    # -- loading ----------------------------------------------------------------------------
    def _absorb(self, rows: list[list[Any]]) -> list[int]:
        new = []
        for r in rows:
            iid = r[ID]
            if iid in self.rows:
                continue  # the model's version wins
            self.rows[iid] = r
            self.pre.add(iid)
            if r[DIGEST] is not None:
                self.pre_blob[iid] = r[MOD_CONTENT]
            new.append(iid)
        if new:
            for tag_id, item_id in self.source.tagged(self.m, new):
                self.tagged.setdefault(item_id, set()).add(tag_id)
        return new

    def prefetch(self, ids: Iterable[int]) -> None:
        if self.complete or not self.present:
            return
        want = [i for i in set(ids) if i not in self.rows]
        if not want:
            return
        self._absorb([list(r) for r in self.source.items(self.m, want)])
        for i in want:
            self.rows.setdefault(i, None)

    def _ensure_folders(self) -> None:
        if self.complete or self.folders_loaded:
            return
        self._absorb([list(r) for r in self.source.folders(self.m)])
        self.folders_loaded = True

    def _ensure_scope(self, scope: list[int]) -> None:
        if self.complete:
            return
        need = [f for f in scope if f not in self.scopes_loaded]
        if need:
            self._absorb([list(r) for r in self.source.items_in_folders(self.m, need)])
            self.scopes_loaded.update(need)

    def _ensure_tags(self) -> dict[int, list[Any]]:
        if self.tags is None:
            self.tags = {}
            if not self.complete:
                for r in self.source.tags(self.m):
                    self.tags[r[1]] = list(r)
                    self.tags_pre.add(r[1])
        return self.tags

    def _tag_ids(self, names: Iterable[str]) -> list[int]:
        wanted = set(names)
        return sorted(tid for tid, r in self._ensure_tags().items() if r[2] in wanted)

    def _existing(self, ids: Iterable[int]) -> list[int]:
        return [i for i in ids if self.rows.get(i) is not None]

    # -- applying ---------------------------------------------------------------------------
    def apply(self, op: Op, change: int, tstamp: int, data_len: int = 0,
              contact_digest: str | None = None) -> str:
        """Apply one op if the gate allows; returns applied | skipped | missing | error."""
        if isinstance(op, CreateMailbox):
            if self.present or self.deleted_before or self.wiped:
                self.counts.skipped += 1
                return "skipped"
            self._create_mailbox(op, change, tstamp)
            self.counts.applied += 1
            return "applied"
        if not self.present:
            self.counts.missing += 1
            return "missing"
        if change <= self.hwm:
            self.counts.skipped += 1
            return "skipped"
        handler = _HANDLERS[type(op)]
        err = handler(self, op, change, tstamp, data_len, contact_digest)
        if err:
            self.counts.errors.append(err)
            return "error"
        if not isinstance(op, DeleteMailbox):
            self.hwm = change
        self.counts.applied += 1
        return "applied"

    def _new_row(self) -> list[Any]:
        r: list[Any] = [None] * NCOLS
        r[C["mailbox_id"]] = self.m
        r[FLAGS] = 0
        r[C["tags"]] = 0
        return r

    def _put(self, row: list[Any]) -> None:
        self.rows[row[ID]] = row
        self.dirty.add(row[ID])

    def _create_mailbox(self, op: CreateMailbox, change: int, tstamp: int) -> None:
        self.present = True
        self.created = True
        self.complete = True
        self.account_id = op.account_id
        self.hwm = change
        self.item_ckpt = FIRST_USER_ID
        self.tags = {}
        date = tstamp // 1000
        for fid, name, parent, attrs, view in SYSTEM_FOLDERS:
            r = self._new_row()
            r[ID], r[TYPE], r[PARENT], r[FOLDER] = fid, TYPE_FOLDER, parent, parent
            r[C["date"]], r[C["size"]] = date, 0
            r[FLAGS] = 0x200000 if fid in (10, 15) else 0
            r[NAME] = name
            r[C["metadata"]] = folder_metadata(view, 0, attrs, "")
            r[MOD_META], r[CHANGE_DATE], r[MOD_CONTENT] = change, date, change
            self._put(r)

    def _bump(self, item_id: int) -> None:
        self.item_ckpt = max(self.item_ckpt, item_id)

    def _touch(self, ids: Iterable[int], change: int, tstamp: int) -> None:
        date = tstamp // 1000
        for i in ids:
            r = self.rows.get(i)
            if r is not None:
                r[MOD_META], r[CHANGE_DATE] = change, date
                self.dirty.add(i)

    def _subfolders(self, fid: int) -> list[int]:
        self._ensure_folders()
        out: list[int] = []
        frontier = {fid}
        while frontier:
            nxt = sorted(i for i, r in self.rows.items()
                         if r is not None and r[TYPE] == TYPE_FOLDER and r[FOLDER] in frontier
                         and i != r[FOLDER] and i not in SYSTEM_FOLDER_IDS)
            out.extend(nxt)
            frontier = set(nxt)
        return out

    def _items_in(self, scope: list[int]) -> list[int]:
        self._ensure_scope(scope)
        s = set(scope)
        return [i for i, r in self.rows.items()
                if r is not None and r[TYPE] != TYPE_FOLDER and r[FOLDER] in s]

    def _hard_delete(self, ids: Iterable[int], change: int, tstamp: int) -> None:
        found = sorted(set(self._existing(ids)))
        if not found:
            return
        by_type: dict[int, list[int]] = {}
        for i in found:
            r = self.rows[i]
            assert r is not None
            by_type.setdefault(r[TYPE], []).append(i)
            self.rows[i] = None
            self.tagged.pop(i, None)
            self.attach_pending.discard(i)
            self.dirty.add(i)
        date = tstamp // 1000
        for typ, tids in sorted(by_type.items()):
            self.tombstones.append((self.m, change, date, typ, ",".join(map(str, tids))))

    def resolve_attached(self, item_id: int) -> None:
        if item_id in self.attach_pending:
            self.attach_pending.discard(item_id)
            r = self.rows.get(item_id)
            if r is not None and self.fields_for(self.content[item_id]).has_attachment:
                r[FLAGS] |= FLAG_ATTACHED

    def refuse(self, op: Op, change: int, why: str) -> None:
        """An op Zimbra's redo() would refuse: nothing changes, it is reported, the change
        number still counts (as `ItemSQL.refused`)."""
        self.counts.errors.append(f"{op.NAME} mailbox {self.m} change {change}: {why}")
        self.refused.add(change)

    # -- output -----------------------------------------------------------------------------
    def changes(self) -> Changes:
        for i in list(self.attach_pending):
            self.resolve_attached(i)
        ch = Changes(self.m, hwm=self.hwm, item_ckpt=self.item_ckpt, created=self.created,
                     hwm_changed=self.hwm != self.hwm0 or self.created)
        if self.wiped:
            ch.wipe = True
            ch.account_id = self.account_id
            ch.deleted_at = self.deleted_at
            return ch
        if self.created:
            ch.create_mailbox = (self.account_id,)
        for i in sorted(self.dirty):
            r = self.rows.get(i)
            if i in self.pre:
                ch.delete_items.append(i)
                ch.delete_tagged_for.append(i)
            if r is not None:
                if r[TYPE] == TYPE_MESSAGE and r[C["sender"]] is _PENDING:
                    self._fill_message(r)
                ch.rows.append(r)
                for t in sorted(self.tagged.get(i, ())):
                    ch.tagged.append((self.m, t, i))
        if self.tags is not None:
            for tid in sorted(self.tags_dirty):
                if tid in self.tags_pre:
                    ch.delete_tags.append(tid)
                ch.tags.append(self.tags[tid])
        ch.tombstones = self.tombstones
        ch.config = self.config
        return ch

    def _fill_message(self, r: list[Any]) -> None:
        f = self.fields_for(self.content[r[ID]])
        r[C["sender"]] = f.sender[:SENDER_MAX]
        r[C["subject"]] = f.subject[:SUBJECT_MAX]
        if r[C["recipients"]] is _PENDING:  # a copy has none (Zimbra's copy leaves them out)
            r[C["recipients"]] = f.recipients[:RECIPIENTS_MAX]

    def surviving(self, item_id: int, mod_content: int) -> bool:
        """Whether the run ends with this item at this content revision, with a blob."""
        r = self.rows.get(item_id)
        return r is not None and r[MOD_CONTENT] == mod_content and r[DIGEST] is not None


_PENDING = object()  # message fields not parsed yet


def _create_folder(mm: MailboxModel, op: CreateFolder, change: int, tstamp: int, *_: Any) -> str:
    if mm.rows.get(op.folder_id) is not None:
        return f"mailbox {mm.m}: folder id {op.folder_id} already exists"
    r = mm._new_row()
    r[ID], r[TYPE], r[PARENT], r[FOLDER] = op.folder_id, TYPE_FOLDER, op.parent_id, op.parent_id
    r[C["date"]] = (op.date if op.date is not None else tstamp) // 1000
    r[C["size"]], r[FLAGS], r[NAME] = 0, op.flags, op.name
    r[C["metadata"]] = folder_metadata(op.view, op.color, op.attrs, op.url)
    r[MOD_META], r[CHANGE_DATE], r[MOD_CONTENT] = change, tstamp // 1000, change
    r[C["uuid"]] = op.uuid
    mm._put(r)
    mm._bump(op.folder_id)
    return ""


def _rename_folder(mm: MailboxModel, op: RenameFolder, change: int, tstamp: int, *_: Any) -> str:
    r = mm.rows.get(op.folder_id)
    if r is not None and r[TYPE] == TYPE_FOLDER:
        r[NAME], r[PARENT], r[FOLDER] = op.name, op.parent_id, op.parent_id
        r[MOD_META], r[CHANGE_DATE] = change, tstamp // 1000
        mm.dirty.add(op.folder_id)
    return ""


def _empty_folder(mm: MailboxModel, op: EmptyFolder, change: int, tstamp: int, *_: Any) -> str:
    subs = mm._subfolders(op.folder_id) if op.subfolders else []
    victims = mm._items_in([op.folder_id, *subs]) + subs
    mm._hard_delete(victims, change, tstamp)
    return ""


def _create_tag(mm: MailboxModel, op: CreateTag, change: int, tstamp: int, *_: Any) -> str:
    tags = mm._ensure_tags()
    if op.tag_id in tags:
        return f"mailbox {mm.m}: tag id {op.tag_id} already exists"
    row: list[Any] = [None] * len(TAG_COLUMNS)
    row[0:9] = [mm.m, op.tag_id, op.name, op.color, 0, 0, 0, change, None]
    tags[op.tag_id] = row
    mm.tags_dirty.add(op.tag_id)
    mm._bump(op.tag_id)
    return ""


def _rename_tag(mm: MailboxModel, op: RenameTag, change: int, tstamp: int, *_: Any) -> str:
    tags = mm._ensure_tags()
    row = tags.get(op.tag_id)
    if row is not None:
        row[2], row[7] = op.name, change
        mm.tags_dirty.add(op.tag_id)
    return ""


def _create_message(mm: MailboxModel, op: CreateMessage, change: int, tstamp: int,
                    *_: Any) -> str:
    if mm.rows.get(op.msg_id) is not None:
        return f"mailbox {mm.m}: item id {op.msg_id} already exists"
    r = mm._new_row()
    r[ID], r[TYPE], r[FOLDER] = op.msg_id, TYPE_MESSAGE, op.folder_id
    r[C["index_id"]], r[C["imap_id"]] = op.msg_id, op.msg_id
    r[C["date"]], r[C["size"]] = op.rcv_date // 1000, op.msg_size
    r[C["locator"]], r[DIGEST] = "1", op.digest
    r[UNREAD] = 1 if op.flags & FLAG_UNREAD else 0
    r[FLAGS] = op.flags & ~FLAG_UNREAD
    r[C["sender"]] = r[C["recipients"]] = r[C["subject"]] = _PENDING
    r[MOD_META], r[CHANGE_DATE], r[MOD_CONTENT] = change, tstamp // 1000, change
    mm._put(r)
    mm.content[op.msg_id] = change
    mm.attach_pending.add(op.msg_id)
    if op.tags:
        tids = mm._tag_ids(op.tags)
        if tids:
            mm.tagged[op.msg_id] = set(tids)
    mm._bump(op.msg_id)
    return ""


def _set_item_tags(mm: MailboxModel, op: SetItemTags, change: int, tstamp: int,
                   *_: Any) -> str:
    if not op.ids:
        return ""
    present = mm._existing(op.ids)
    if op.flags != FLAG_UNCHANGED:
        new = op.flags & ~FLAG_UNREAD & ~FLAG_ATTACHED
        for i in present:
            r = mm.rows[i]
            assert r is not None
            r[FLAGS] = (r[FLAGS] & FLAG_ATTACHED) | new
            r[UNREAD] = 1 if op.flags & FLAG_UNREAD else 0
    if op.tags is not None:
        tids = set(mm._tag_ids(op.tags))
        for i in present:
            mm.tagged[i] = set(tids)
            mm.dirty.add(i)
    mm._touch(op.ids, change, tstamp)
    return ""


def _alter_item_tag(mm: MailboxModel, op: AlterItemTag, change: int, tstamp: int,
                    *_: Any) -> str:
    if not op.ids:
        return ""
    present = mm._existing(op.ids)
    if op.tag == "\\Unread":
        for i in present:
            mm.rows[i][UNREAD] = 1 if op.tagged else 0  # type: ignore[index]
    elif op.tag in FLAG_NAMES:
        bit = FLAG_NAMES[op.tag]
        for i in present:
            if bit == FLAG_ATTACHED:
                mm.resolve_attached(i)
            r = mm.rows[i]
            assert r is not None
            r[FLAGS] = (r[FLAGS] | bit) if op.tagged else (r[FLAGS] & ~bit)
    else:
        tids = mm._tag_ids((op.tag,))
        if tids:
            t = tids[0]
            for i in present:
                s = mm.tagged.setdefault(i, set())
                if op.tagged:
                    s.update(tids)
                else:
                    s.discard(t)
    mm._touch(op.ids, change, tstamp)
    return ""


def _move_item(mm: MailboxModel, op: MoveItem, change: int, tstamp: int, *_: Any) -> str:
    date = tstamp // 1000
    for i in mm._existing(op.ids):
        r = mm.rows[i]
        assert r is not None
        r[FOLDER] = op.dest_id
        if op.type == TYPE_FOLDER:
            r[PARENT] = op.dest_id
        r[MOD_META], r[CHANGE_DATE] = change, date
        mm.dirty.add(i)
    return ""


def _delete_item(mm: MailboxModel, op: DeleteItem, change: int, tstamp: int, *_: Any) -> str:
    ids = list(op.ids)
    if op.type == TYPE_FOLDER:
        extra: list[int] = []
        for fid in op.ids:
            subs = mm._subfolders(fid)
            extra.extend(mm._items_in([fid, *subs]))
            extra.extend(subs)
        ids = sorted(set(ids + extra))
    mm._hard_delete(ids, change, tstamp)
    return ""


def _create_contact(mm: MailboxModel, op: CreateContact, change: int, tstamp: int,
                    data_len: int, digest: str | None) -> str:
    if mm.rows.get(op.contact_id) is not None:
        return f"mailbox {mm.m}: item id {op.contact_id} already exists"
    name, email, _ = contact_text(op.attrs)
    r = mm._new_row()
    r[ID], r[TYPE], r[FOLDER] = op.contact_id, TYPE_CONTACT, op.folder_id
    r[C["index_id"]], r[C["date"]], r[C["size"]] = op.contact_id, tstamp // 1000, data_len
    r[C["locator"]] = "1" if data_len else None
    r[DIGEST] = digest if data_len else None
    r[C["sender"]], r[C["subject"]] = email[:SENDER_MAX], name[:SUBJECT_MAX]
    r[C["metadata"]] = javafmt.bencode_map(dict(op.attrs))
    r[MOD_META], r[CHANGE_DATE], r[MOD_CONTENT] = change, tstamp // 1000, change
    mm._put(r)
    if op.tags:
        tids = mm._tag_ids(op.tags)
        if tids:
            mm.tagged[op.contact_id] = set(tids)
    mm._bump(op.contact_id)
    return ""


def _modify_contact(mm: MailboxModel, op: ModifyContact, change: int, tstamp: int,
                    data_len: int, digest: str | None) -> str:
    r = mm.rows.get(op.contact_id)
    if r is None or r[TYPE] != TYPE_CONTACT:
        return ""
    name, email, _ = contact_text(op.attrs)
    r[C["size"]] = data_len
    r[C["locator"]] = "1" if data_len else None
    r[DIGEST] = digest if data_len else None
    r[C["sender"]], r[C["subject"]] = email[:SENDER_MAX], name[:SUBJECT_MAX]
    r[C["metadata"]] = javafmt.bencode_map(dict(op.attrs))
    r[MOD_META], r[CHANGE_DATE], r[MOD_CONTENT] = change, tstamp // 1000, change
    mm.dirty.add(op.contact_id)
    return ""


def _index_item(mm: MailboxModel, op: Op, change: int, tstamp: int, *_: Any) -> str:
    return ""


def _delete_mailbox(mm: MailboxModel, op: DeleteMailbox, change: int, tstamp: int,
                    *_: Any) -> str:
    mm.wiped = True
    mm.present = False
    mm.complete = True
    mm.deleted_at = tstamp // 1000
    mm.rows.clear()
    mm.dirty.clear()
    mm.tagged.clear()
    mm.tags = {}
    mm.tags_dirty.clear()
    mm.tombstones = []
    mm.attach_pending.clear()
    mm.config.clear()
    return ""


def _rename_item(mm: MailboxModel, op: RenameItem, change: int, tstamp: int, *_: Any) -> str:
    if op.type == TYPE_TAG:
        row = mm._ensure_tags().get(op.item_id)
        if row is not None:
            row[2], row[7] = op.name, change
            mm.tags_dirty.add(op.item_id)
        return ""
    r = mm.rows.get(op.item_id)
    if r is not None:
        r[NAME], r[FOLDER] = op.name, op.folder_id
        if op.type in (TYPE_FOLDER, TYPE_SEARCH):
            r[PARENT] = op.folder_id
        if op.date is not None:
            r[C["date"]] = op.date // 1000
        r[MOD_META], r[CHANGE_DATE] = change, tstamp // 1000
        mm.dirty.add(op.item_id)
    return ""


def _color_item(mm: MailboxModel, op: ColorItem, change: int, tstamp: int, *_: Any) -> str:
    if op.type == TYPE_TAG:
        tags = mm._ensure_tags()
        for tid in op.ids:
            row = tags.get(tid)
            if row is not None:
                row[3], row[7] = op.color, change
                mm.tags_dirty.add(tid)
        return ""
    for i in mm._existing(op.ids):
        r = mm.rows[i]
        assert r is not None
        r[C["metadata"]] = with_metadata(r[C["metadata"]], c=op.color)
    mm._touch(op.ids, change, tstamp)
    return ""


def _date_item(mm: MailboxModel, op: DateItem, change: int, tstamp: int, *_: Any) -> str:
    r = mm.rows.get(op.item_id)
    if r is not None:
        r[C["date"]] = op.date // 1000
        r[MOD_META], r[CHANGE_DATE] = change, tstamp // 1000
        mm.dirty.add(op.item_id)
    return ""


def _set_imap_uid(mm: MailboxModel, op: SetImapUid, change: int, tstamp: int, *_: Any) -> str:
    for mid, uid in op.uids:
        r = mm.rows.get(mid)
        if uid > 0 and r is not None and r[TYPE] == TYPE_MESSAGE:
            r[C["imap_id"]] = uid
            r[MOD_META], r[CHANGE_DATE] = change, tstamp // 1000
            mm.dirty.add(mid)
    if op.uids:  # uids come from the item id counter (Mailbox.getNextItemId)
        mm._bump(max(uid for _, uid in op.uids))
    return ""


def _create_saved_search(mm: MailboxModel, op: CreateSavedSearch, change: int, tstamp: int,
                         *_: Any) -> str:
    if mm.rows.get(op.search_id) is not None:
        return f"mailbox {mm.m}: item id {op.search_id} already exists"
    r = mm._new_row()
    r[ID], r[TYPE], r[PARENT], r[FOLDER] = op.search_id, TYPE_SEARCH, op.folder_id, op.folder_id
    r[C["date"]], r[C["size"]], r[FLAGS], r[NAME] = tstamp // 1000, 0, op.flags, op.name
    r[C["metadata"]] = search_metadata(op.query, op.types, op.sort, op.color)
    r[MOD_META], r[CHANGE_DATE], r[MOD_CONTENT] = change, tstamp // 1000, change
    r[C["uuid"]] = op.uuid
    mm._put(r)
    mm._bump(op.search_id)
    return ""


def _modify_saved_search(mm: MailboxModel, op: ModifySavedSearch, change: int, tstamp: int,
                         *_: Any) -> str:
    r = mm.rows.get(op.search_id)
    if r is not None and r[TYPE] == TYPE_SEARCH:
        r[C["metadata"]] = with_metadata(r[C["metadata"]], q=op.query, t=op.types, s=op.sort)
        r[MOD_META], r[CHANGE_DATE] = change, tstamp // 1000
        mm.dirty.add(op.search_id)
    return ""


def _set_custom_data(mm: MailboxModel, op: SetCustomData, change: int, tstamp: int,
                     *_: Any) -> str:
    changes = custom_data_change(op.custom_key, op.custom_value)
    r = mm.rows.get(op.item_id)
    if changes and r is not None:
        r[C["metadata"]] = with_metadata(r[C["metadata"]], **changes)
        r[MOD_META], r[CHANGE_DATE] = change, tstamp // 1000
        mm.dirty.add(op.item_id)
    return ""


def _copy_item(mm: MailboxModel, op: CopyItem, change: int, tstamp: int, *_: Any) -> str:
    why, error = itemrules.copy_refusal(op, itemrules.row_types(mm.rows))
    if why:
        if error:
            mm.refuse(op, change, why)
        else:
            mm.refused.add(change)
        return ""
    for src_id, copy_id, uuid in op.entries:
        src = mm.rows[src_id]
        assert src is not None
        flags = itemrules.source_flags(src, op.dest_folder_id)
        if flags != src[FLAGS]:  # \Copied: a system flag, no new change number
            src[FLAGS] = flags
            mm.dirty.add(src_id)
        mm._put(itemrules.copy_row(src, copy_id, uuid, op.dest_folder_id, change, tstamp))
        key = mm.content.get(src_id)
        if key is not None:  # the source's body came in this run (its fields may be pending)
            mm.content[copy_id] = key
        if src_id in mm.attach_pending:
            mm.attach_pending.add(copy_id)
        chained = mm.copy_source.get(src_id) if key is None else None
        # A copy of a copy made in this run holds the same bytes as the first source's file:
        # the middle copy's own file may never be written (a copy deleted later in the chunk).
        mm.copy_source[copy_id] = chained or (src_id, key, src[MOD_CONTENT])
        if mm.tagged.get(src_id):
            mm.tagged[copy_id] = set(mm.tagged[src_id])
    mm._bump(max(e[1] for e in op.entries))
    return ""


def _save_draft(mm: MailboxModel, op: SaveDraft, change: int, tstamp: int, *_: Any) -> str:
    r = mm.rows.get(op.msg_id)
    if r is None:
        return ""  # NoSuchItem, ignored in a replay
    if not itemrules.is_draft(r):
        mm.refuse(op, change, f"item {op.msg_id} is not a draft")
        return ""
    new = itemrules.draft_row(r, size=op.msg_size, digest=op.digest, change=change,
                              tstamp=tstamp, has_attachment=False)  # \Attached: when parsed
    new[C["sender"]] = new[C["recipients"]] = new[C["subject"]] = _PENDING
    mm._put(new)
    mm.content[op.msg_id] = change
    mm.attach_pending.add(op.msg_id)
    mm._bump(op.imap_id)  # the uid came from the item id counter
    return ""


def _config(mm: MailboxModel, op: ConfigOp, change: int, tstamp: int, *_: Any) -> str:
    why = mailbox_config.statement(mm.m, op)
    if isinstance(why, str):
        mm.refuse(op, change, why)
    else:
        mm.config.append(op)
    return ""


def _purge(mm: MailboxModel, op: PurgeOldMessages, change: int, tstamp: int, *_: Any) -> str:
    lt = mm.retention.lifetimes(mm.account_id)
    roots, every_message = purge.scope(lt)
    gone: list[int] = []
    if roots or every_message:
        mm._ensure_folders()
        folders = {i: r[FOLDER] for i, r in mm.rows.items()
                   if r is not None and r[TYPE] == TYPE_FOLDER}
        scope = sorted(folders) if every_message else sorted(
            {f for root in roots for f in purge.hierarchy(folders, root)})
        if scope:
            mm._ensure_scope(scope)
        date = C["date"]
        gone = purge.victims([purge.Item(r[ID], r[TYPE], r[FOLDER], r[date], r[CHANGE_DATE],
                                         r[UNREAD]) for r in mm.rows.values() if r is not None],
                             lt, tstamp)
        mm._hard_delete(gone, change, tstamp)
    mm.purged[change] = gone
    return ""


def _noop(mm: MailboxModel, op: Op, change: int, tstamp: int, *_: Any) -> str:
    return ""


_HANDLERS: dict[type, Callable[..., str]] = {
    CreateFolder: _create_folder, RenameFolder: _rename_folder, EmptyFolder: _empty_folder,
    CreateTag: _create_tag, RenameTag: _rename_tag, CreateMessage: _create_message,
    SetItemTags: _set_item_tags, AlterItemTag: _alter_item_tag, MoveItem: _move_item,
    DeleteItem: _delete_item, CreateContact: _create_contact, ModifyContact: _modify_contact,
    IndexItem: _index_item, DeleteMailbox: _delete_mailbox,
    RenameItem: _rename_item, ColorItem: _color_item, DateItem: _date_item,
    SetImapUid: _set_imap_uid, CreateSavedSearch: _create_saved_search,
    ModifySavedSearch: _modify_saved_search, DeleteItemFromDumpster: _noop,
    SetCustomData: _set_custom_data, CopyItem: _copy_item, SaveDraft: _save_draft,
    SetConfig: _config, DeleteConfig: _config, PurgeOldMessages: _purge,
}


def referenced_ids(op: Op) -> list[int]:
    """Every item id an op names (for prefetching the rows it may touch)."""
    if isinstance(op, CreateMessage):
        return [op.msg_id, op.folder_id]
    if isinstance(op, CreateFolder):
        return [op.folder_id, op.parent_id]
    if isinstance(op, RenameFolder):
        return [op.folder_id, op.parent_id]
    if isinstance(op, CreateContact):
        return [op.contact_id, op.folder_id]
    if isinstance(op, ModifyContact):
        return [op.contact_id]
    if isinstance(op, SetItemTags | AlterItemTag | DeleteItem):
        return list(op.ids)
    if isinstance(op, MoveItem):
        return [*op.ids, op.dest_id]
    if isinstance(op, EmptyFolder):
        return [op.folder_id]
    if isinstance(op, IndexItem | DateItem | SetCustomData):
        return [op.item_id]
    if isinstance(op, RenameItem):
        return [op.item_id, op.folder_id]
    if isinstance(op, ColorItem):
        return list(op.ids)
    if isinstance(op, SetImapUid):
        return [mid for mid, _ in op.uids]
    if isinstance(op, CreateSavedSearch):
        return [op.search_id, op.folder_id]
    if isinstance(op, ModifySavedSearch):
        return [op.search_id]
    if isinstance(op, CopyItem):
        return [op.dest_folder_id, *(i for e in op.entries for i in e[:2])]
    if isinstance(op, SaveDraft):
        return [op.msg_id]
    return []


def blob_item_ids(op: Op) -> list[int]:
    """The rows whose blob an op writes (and, for a copy, its sources): what a replay needs to
    know of an op the database has already applied, to bring the blob volume forward."""
    if isinstance(op, CopyItem):
        return [i for e in op.entries for i in e[:2]]
    return referenced_ids(op)[:1]


def contact_digest(data: bytes) -> str | None:
    return blobmod.digest(data) if data else None
