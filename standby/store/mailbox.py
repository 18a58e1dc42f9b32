"""The live store's Mailbox API: every change is a Zimbra op journaled with Zimbra's protocol.

For each change, under the mailbox's lock:

1. validate against the current state and build the op (ids, change number, content);
2. log the change record, fsynced (group commit);
3. apply it (`effects.Effects`): database transaction committed, then blob, then index;
   if the database step fails, log AbortTxn (fsynced) and report the error;
4. log CommitTxn, not fsynced.

A delivery to several mailboxes first logs one StoreIncomingBlob (mailbox -1, blob staged under
`incoming/`, committed at once), then one CreateMessage with a LINK body per recipient.

Zimbra's other mail calls log what Zimbra logs for them: a copy (CopyItem, its copies in
HashMap order), a new draft (a CreateMessage into Drafts, \\Draft and \\Sent flagged) and its
later versions (SaveDraft, rcpt ":API:", folder -1, the op's time as received date, a new imap
id from the item counter), config sections (SetConfig, DeleteConfig), and the purge of old
messages (PurgeOldMessages, logged only when the account's lifetimes ask for one, as
`Mailbox.purgeMessages` returns before logging otherwise).

Side effects come in: `Store` is given the writer, a connection factory, the blob and index stores
and the directory; it makes none of them.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from standby import log as slog
from standby import timefmt
from standby.errors import NotFound, ServiceError, StateConflict, UsageError
from standby.redolog.ops import (
    BODY_INLINE,
    BODY_LINK,
    FLAG_NAMES,
    FLAG_UNCHANGED,
    FLAG_UNREAD,
    TYPE_CONTACT,
    TYPE_FOLDER,
    TYPE_MESSAGE,
    TYPE_UNKNOWN,
    FLAG_DRAFT,
    FLAG_FROM_ME,
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
    SetItemTags,
    ColorItem,
    CreateSavedSearch,
    DateItem,
    ModifySavedSearch,
    RenameItem,
    SetCustomData,
    SetImapUid,
    StoreIncomingBlob,
    contact_fields,
    hashmap_ordered,
)
from standby.redolog import metadata
from standby.redolog.record import MAILBOX_ALL, Op, Record
from standby.redolog.writer import RedoLogWriter, TxnIds
from standby.store import blobs as blobmod
from standby.store.blobs import BlobStore
from standby.store.directory import Directory
from standby.store.effects import Effects
from standby.store.index import IndexStore, catch_up_mailbox
from standby.store.schema import group_db
from standby.store.itemsql import tombstone_ids
from standby.store.shapes import SYSTEM_FOLDER_IDS

INBOX, TRASH, JUNK, SENT, DRAFTS, CONTACTS, USER_ROOT = 2, 3, 4, 5, 6, 7, 1
TYPE_SEARCH, TYPE_TAG = 2, 3


@dataclass
class _MailboxState:
    last_change: int
    last_item_id: int
    account_id: str
    epoch: int = 0


class Store:
    def __init__(
        self,
        *,
        writer: RedoLogWriter,
        connect: Callable[[], Any],
        effects: Effects,
        directory: Directory,
        groups: int,
        clock: Callable[[], int] = timefmt.now_ms,
        txn_ids: TxnIds | None = None,
    ) -> None:
        self.writer = writer
        self._connect = connect
        self.effects = effects
        self.blobs: BlobStore = effects.blobs
        self.index: IndexStore = effects.index
        self.directory = directory
        self.groups = groups
        self.clock = clock
        self.txn_ids = txn_ids or TxnIds()
        self._locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._state: dict[int, _MailboxState] = {}
        self._tls = threading.local()
        self._conns: list[Any] = []
        self._incoming = itertools.count(1)
        self._mailbox_create_lock = threading.Lock()
        self.log = slog.get("standby.store")
        self.ops_done = 0
        self.catchup_state: Callable[[], str] = lambda: "not needed"

    # -- plumbing ---------------------------------------------------------------------------
    def conn(self) -> Any:
        c = getattr(self._tls, "conn", None)
        if c is None:
            c = self._connect()
            self._tls.conn = c
            with self._locks_lock:
                self._conns.append(c)
        return c

    def close(self) -> None:
        with self._locks_lock:
            for c in self._conns:
                try:
                    c.close()
                except pymysql.err.Error:
                    pass
            self._conns.clear()

    @contextmanager
    def _mailbox(self, mailbox_id: int) -> Iterator[_MailboxState]:
        with self._locks_lock:
            lock = self._locks.setdefault(mailbox_id, threading.Lock())
        # The directory's gate refuses changes while the account is in maintenance and lets a
        # backup or restore wait for changes in flight; a restore bumps the epoch, after which
        # what this process caches about the mailbox is reloaded.
        with lock, self.directory.mailbox_gate(mailbox_id) as epoch:
            st = self._state.get(mailbox_id)
            if st is None or st.epoch != epoch:
                st = self._load_state(mailbox_id)
                st.epoch = epoch
            yield st

    def _load_state(self, mailbox_id: int) -> _MailboxState:
        cur = self.conn().cursor()
        cur.execute("SELECT change_checkpoint, item_id_checkpoint, account_id FROM zimbra.mailbox"
                    " WHERE id = %s", (mailbox_id,))
        row = cur.fetchone()
        self.conn().commit()
        if row is None:
            raise NotFound(f"mailbox {mailbox_id} does not exist")
        st = _MailboxState(int(row[0]), int(row[1]), row[2])
        self._state[mailbox_id] = st
        return st

    def _t(self, mailbox_id: int, table: str) -> str:
        return f"{group_db(mailbox_id, self.groups)}.{table}"

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        c = self.conn()
        cur = c.cursor()
        cur.execute(sql, args)
        rows = list(cur.fetchall())
        c.commit()
        return rows

    def _execute(self, mailbox_id: int, st: _MailboxState, op: Op,
                 content: bytes | None = None, *, at: int | None = None) -> Record:
        """Steps 2-4 of the protocol for one change record (stamped `at`, default now);
        returns the logged record."""
        change = st.last_change + 1
        t, c = self.txn_ids.next()
        rec = Record(op, self.clock() if at is None else at, t, c, mailbox_id, change)
        self.writer.log(rec, sync=True)
        try:
            outcome = self.effects.apply(self.conn(), rec, content=content)
        except pymysql.err.Error as e:
            self.writer.log_abort(rec)
            self._reset_conn()
            raise ServiceError(f"database error applying {op.NAME} to mailbox {mailbox_id}: "
                               f"{e.args[-1] if e.args else e}") from e
        if outcome.db != "applied" and not isinstance(op, CreateMailbox):
            # The database already had this change number: our cached state was stale.
            self.writer.log_abort(rec)
            self._state.pop(mailbox_id, None)
            raise StateConflict(f"mailbox {mailbox_id}: change {change} was already applied "
                                f"({outcome.db}); state reloaded, retry")
        st.last_change = change
        self.writer.log_commit(rec)
        self.ops_done += 1
        return rec

    def _reset_conn(self) -> None:
        c = getattr(self._tls, "conn", None)
        self._tls.conn = None
        if c is not None:
            try:
                c.close()
            except pymysql.err.Error:
                pass

    def _mailbox_of(self, account: str) -> int:
        acct = self.directory.get(account)
        if acct.mailbox_id is None:
            raise NotFound(f"account {account} has no mailbox")
        return acct.mailbox_id

    # -- accounts ---------------------------------------------------------------------------
    def create_account(self, email: str, *, account_id: str | None = None) -> dict[str, Any]:
        """Directory entry plus CreateMailbox; returns {account_id, email, mailbox_id}."""
        acct = self.directory.create_account(email, account_id=account_id,
                                             created_ms=self.clock())
        with self._mailbox_create_lock:
            rows = self._query("SELECT next_mailbox_id FROM zimbra.current_volumes")
            mailbox_id = int(rows[0][0])
            t, c = self.txn_ids.next()
            rec = Record(CreateMailbox(acct.id), self.clock(), t, c, mailbox_id, 1)
            self.writer.log(rec, sync=True)
            try:
                self.effects.apply(self.conn(), rec)
            except pymysql.err.Error as e:
                self.writer.log_abort(rec)
                self.directory.delete_account(acct.id)
                raise ServiceError(f"database error creating mailbox for {email}: {e}") from e
            self.writer.log_commit(rec)
        self.directory.set_mailbox(acct.id, mailbox_id)
        self.ops_done += 1
        return {"account_id": acct.id, "email": acct.email, "mailbox_id": mailbox_id}

    def delete_account(self, account: str) -> dict[str, Any]:
        mailbox_id = self._mailbox_of(account)
        with self._mailbox(mailbox_id) as st:
            self._execute(mailbox_id, st, DeleteMailbox())
            self._state.pop(mailbox_id, None)
        acct = self.directory.delete_account(account)
        return {"account_id": acct.id, "mailbox_id": mailbox_id}

    def mailbox_id(self, account: str) -> int:
        return self._mailbox_of(account)

    # -- delivery ---------------------------------------------------------------------------
    def deliver(self, raw: bytes, recipients: list[str], *, folder_id: int = INBOX,
                flags: int = FLAG_UNREAD, tags: tuple[str, ...] = (),
                received_ms: int | None = None) -> list[dict[str, int]]:
        """Deliver one message to each recipient (email or account id)."""
        if not recipients:
            raise UsageError("a delivery needs at least one recipient")
        mboxes = list(dict.fromkeys(self._mailbox_of(r) for r in recipients))
        digest = blobmod.digest(raw)
        rcv = received_ms if received_ms is not None else self.clock()
        if len(mboxes) == 1:
            m = mboxes[0]
            return [self._create_message(m, recipients[0], raw, digest, rcv, folder_id, flags,
                                         tags, shared=False, path=None)]
        # Shared delivery: one StoreIncomingBlob, then a LINK CreateMessage per mailbox.
        name = f"{os.getpid()}-{next(self._incoming)}-{uuid.uuid4().hex[:8]}.msg"
        path = self.blobs.incoming_path(name)
        t, c = self.txn_ids.next()
        sib = Record(StoreIncomingBlob(tuple(mboxes), digest, str(path), len(raw), raw),
                     self.clock(), t, c, MAILBOX_ALL)
        self.writer.log(sib, sync=True)
        self.blobs.write(path, raw)
        self.writer.log_commit(sib)
        out = []
        refused: list[str] = []
        try:
            for m, rcpt in zip(mboxes, recipients):
                try:
                    out.append(self._create_message(m, rcpt, raw, digest, rcv, folder_id,
                                                    flags, tags, shared=True, path=str(path)))
                except StateConflict as e:  # that one is in maintenance: the others get it
                    refused.append(e.message)
        finally:
            self.blobs.delete(path)
        if refused:
            raise StateConflict(f"delivered to {len(out)} of {len(mboxes)} recipients; "
                                + "; ".join(refused))
        return out

    def _create_message(self, m: int, rcpt: str, raw: bytes, digest: str, rcv: int,
                        folder_id: int, flags: int, tags: tuple[str, ...], *, shared: bool,
                        path: str | None) -> dict[str, int]:
        with self._mailbox(m) as st:
            self._require_folder(m, folder_id)
            self._require_tags(m, tags)
            msg_id = st.last_item_id + 1
            op = CreateMessage(rcpt, rcv, shared, digest, len(raw), msg_id, folder_id,
                               flags=flags, tags=tuple(tags) or None,
                               path=path if shared else None,
                               body_type=BODY_LINK if shared else BODY_INLINE,
                               data=None if shared else raw)
            st.last_item_id = msg_id
            rec = self._execute(m, st, op, content=raw)
            return {"mailbox_id": m, "id": msg_id, "change": rec.change_id}

    # -- validation helpers -----------------------------------------------------------------
    def _require_folder(self, m: int, folder_id: int) -> None:
        rows = self._query(f"SELECT 1 FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                           f" AND id = %s AND type = {TYPE_FOLDER}", (m, folder_id))
        if not rows:
            raise NotFound(f"mailbox {m} has no folder {folder_id}")

    def _require_tags(self, m: int, names: tuple[str, ...]) -> None:
        for name in names:
            rows = self._query(f"SELECT 1 FROM {self._t(m, 'tag')} WHERE mailbox_id = %s AND"
                               " name = %s", (m, name))
            if not rows:
                raise NotFound(f"mailbox {m} has no tag {name!r}")

    def _existing(self, m: int, ids: list[int], *, folder: bool | None = None) -> list[int]:
        if not ids:
            return []
        q = ",".join(["%s"] * len(ids))
        cond = "" if folder is None else (f" AND type = {TYPE_FOLDER}" if folder
                                          else f" AND type <> {TYPE_FOLDER}")
        rows = self._query(f"SELECT id FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                           f" AND id IN ({q}){cond} ORDER BY id", (m, *ids))
        return [r[0] for r in rows]

    def _item_type(self, m: int, item_id: int) -> int:
        rows = self._query(f"SELECT type FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                           " AND id = %s", (m, item_id))
        if not rows:
            raise NotFound(f"mailbox {m} has no item {item_id}")
        return int(rows[0][0])

    # -- folders and tags -------------------------------------------------------------------
    def create_folder(self, m: int, name: str, *, parent_id: int = USER_ROOT,
                      view: int = TYPE_MESSAGE, color: int = 0) -> int:
        _check_name(name)
        with self._mailbox(m) as st:
            self._require_folder(m, parent_id)
            dup = self._query(f"SELECT 1 FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                              " AND folder_id = %s AND name = %s", (m, parent_id, name))
            if dup:
                raise StateConflict(f"folder {name!r} already exists under {parent_id}")
            fid = st.last_item_id + 1
            st.last_item_id = fid
            self._execute(m, st, CreateFolder(name, parent_id, 0, view, 0, color, "", fid,
                                              str(uuid.UUID(int=(m << 64) | fid)), self.clock()))
            return fid

    def rename_folder(self, m: int, folder_id: int, name: str,
                      parent_id: int | None = None) -> None:
        _check_name(name)
        with self._mailbox(m) as st:
            if folder_id in SYSTEM_FOLDER_IDS:
                raise UsageError(f"folder {folder_id} is a system folder and cannot be renamed")
            rows = self._query(f"SELECT parent_id FROM {self._t(m, 'mail_item')} WHERE"
                               f" mailbox_id = %s AND id = %s AND type = {TYPE_FOLDER}",
                               (m, folder_id))
            if not rows:
                raise NotFound(f"mailbox {m} has no folder {folder_id}")
            parent = rows[0][0] if parent_id is None else parent_id
            self._require_folder(m, parent)
            if parent == folder_id or folder_id in self._ancestors(m, parent):
                raise UsageError("a folder cannot be moved under itself")
            dup = self._query(f"SELECT 1 FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                              " AND folder_id = %s AND name = %s AND id <> %s",
                              (m, parent, name, folder_id))
            if dup:
                raise StateConflict(f"folder {name!r} already exists under {parent}")
            self._execute(m, st, RenameFolder(folder_id, parent, name))

    def _ancestors(self, m: int, folder_id: int) -> list[int]:
        out, cur = [], folder_id
        for _ in range(256):
            rows = self._query(f"SELECT parent_id FROM {self._t(m, 'mail_item')} WHERE"
                               " mailbox_id = %s AND id = %s", (m, cur))
            if not rows or rows[0][0] == cur:
                break
            cur = rows[0][0]
            out.append(cur)
        return out

    def empty_folder(self, m: int, folder_id: int, *, subfolders: bool = True) -> None:
        with self._mailbox(m) as st:
            self._require_folder(m, folder_id)
            self._execute(m, st, EmptyFolder(folder_id, subfolders))

    def create_tag(self, m: int, name: str, *, color: int = 0) -> int:
        _check_name(name)
        if name.startswith("\\"):
            raise UsageError("tag names may not start with a backslash (reserved for flags)")
        with self._mailbox(m) as st:
            if self._query(f"SELECT 1 FROM {self._t(m, 'tag')} WHERE mailbox_id = %s AND"
                           " name = %s", (m, name)):
                raise StateConflict(f"tag {name!r} already exists")
            tid = st.last_item_id + 1
            st.last_item_id = tid
            self._execute(m, st, CreateTag(tid, name, color))
            return tid

    def rename_tag(self, m: int, tag_id: int, name: str) -> None:
        _check_name(name)
        with self._mailbox(m) as st:
            if not self._query(f"SELECT 1 FROM {self._t(m, 'tag')} WHERE mailbox_id = %s AND"
                               " id = %s", (m, tag_id)):
                raise NotFound(f"mailbox {m} has no tag {tag_id}")
            if self._query(f"SELECT 1 FROM {self._t(m, 'tag')} WHERE mailbox_id = %s AND"
                           " name = %s AND id <> %s", (m, name, tag_id)):
                raise StateConflict(f"tag {name!r} already exists")
            self._execute(m, st, RenameTag(tag_id, name))

    # -- item changes -----------------------------------------------------------------------
    def set_tags(self, m: int, ids: list[int], *, flags: int = FLAG_UNCHANGED,
                 tags: tuple[str, ...] | None = None) -> list[int]:
        with self._mailbox(m) as st:
            found = self._existing(m, ids, folder=False)
            if not found:
                raise NotFound(f"mailbox {m}: none of the items {ids} exist")
            if tags:
                self._require_tags(m, tags)
            self._execute(m, st, SetItemTags(TYPE_MESSAGE, flags, tags, tuple(found)))
            return found

    def alter_tag(self, m: int, ids: list[int], tag: str, tagged: bool) -> list[int]:
        with self._mailbox(m) as st:
            found = self._existing(m, ids, folder=False)
            if not found:
                raise NotFound(f"mailbox {m}: none of the items {ids} exist")
            if tag not in FLAG_NAMES:
                self._require_tags(m, (tag,))
            self._execute(m, st, AlterItemTag(TYPE_MESSAGE, tag, tagged, tuple(found)))
            return found

    def move(self, m: int, ids: list[int], dest_id: int) -> list[int]:
        with self._mailbox(m) as st:
            self._require_folder(m, dest_id)
            found = self._existing(m, ids, folder=False)
            if not found:
                raise NotFound(f"mailbox {m}: none of the items {ids} exist")
            self._execute(m, st, MoveItem(TYPE_MESSAGE, dest_id, tuple(found)))
            return found

    def delete(self, m: int, ids: list[int]) -> list[int]:
        """Hard-delete items; a folder id deletes the folder and everything below it."""
        with self._mailbox(m) as st:
            if any(i in SYSTEM_FOLDER_IDS for i in ids):
                raise UsageError("system folders cannot be deleted")
            folders = self._existing(m, ids, folder=True)
            others = self._existing(m, ids, folder=False)
            if not folders and not others:
                raise NotFound(f"mailbox {m}: none of the items {ids} exist")
            if folders:
                self._execute(m, st, DeleteItem(TYPE_FOLDER, tuple(folders)))
            if others:
                types = {self._item_type(m, i) for i in others}
                typ = types.pop() if len(types) == 1 else TYPE_UNKNOWN
                self._execute(m, st, DeleteItem(typ, tuple(others)))
            return folders + others

    def create_contact(self, m: int, attrs: dict[str, str], *, folder_id: int = CONTACTS,
                       data: bytes = b"", tags: tuple[str, ...] = ()) -> int:
        fields = _contact_fields(attrs)
        with self._mailbox(m) as st:
            self._require_folder(m, folder_id)
            self._require_tags(m, tags)
            cid = st.last_item_id + 1
            st.last_item_id = cid
            self._execute(m, st, CreateContact(cid, folder_id, fields, tuple(tags) or None, data))
            return cid

    def modify_contact(self, m: int, contact_id: int, attrs: dict[str, str], *,
                       data: bytes = b"") -> None:
        """Replace a contact's fields (Zimbra's ModifyContactRequest with replace="1")."""
        fields = _contact_fields(attrs)
        with self._mailbox(m) as st:
            if self._item_type(m, contact_id) != TYPE_CONTACT:
                raise UsageError(f"item {contact_id} is not a contact")
            self._execute(m, st, ModifyContact(contact_id, fields, data))

    def set_color(self, m: int, ids: list[int], color: int, *, tags: bool = False) -> list[int]:
        """ColorItem: the color of items (folders, messages, searches), or of tags."""
        with self._mailbox(m) as st:
            if tags:
                q = ",".join(["%s"] * len(ids))
                found = [r[0] for r in self._query(
                    f"SELECT id FROM {self._t(m, 'tag')} WHERE mailbox_id = %s AND id IN ({q})"
                    " ORDER BY id", (m, *ids))] if ids else []
                typ = TYPE_TAG
            else:
                found = self._existing(m, ids)
                types = {self._item_type(m, i) for i in found}
                typ = types.pop() if len(types) == 1 else TYPE_UNKNOWN
            if not found:
                raise NotFound(f"mailbox {m}: none of the items {ids} exist")
            self._execute(m, st, ColorItem(typ, color, tuple(found)))
            return found

    def set_custom_data(self, m: int, item_id: int, section: str,
                        data: dict[str, str]) -> None:
        """SetCustomData: one custom metadata section of an item (empty data removes it)."""
        if not section.strip():
            raise UsageError("a custom metadata section needs a name")
        with self._mailbox(m) as st:
            typ = self._item_type(m, item_id)
            self._execute(m, st, SetCustomData(item_id, typ, section,
                                               metadata.to_string(data) if data else ""))

    def set_date(self, m: int, item_id: int, date_ms: int) -> None:
        """DateItem: an item's date (epoch ms)."""
        with self._mailbox(m) as st:
            typ = self._item_type(m, item_id)
            self._execute(m, st, DateItem(item_id, typ, date_ms))

    def reset_imap_uids(self, m: int, ids: list[int]) -> dict[int, int]:
        """SetImapUid: new IMAP uids for messages, each the mailbox's next item id (as
        Zimbra's resetImapUid), logged in Zimbra's HashMap order."""
        with self._mailbox(m) as st:
            found = [i for i in self._existing(m, ids, folder=False)
                     if self._item_type(m, i) == TYPE_MESSAGE]
            if not found:
                raise NotFound(f"mailbox {m}: none of the messages {ids} exist")
            uids = {}
            for i in found:
                st.last_item_id += 1
                uids[i] = st.last_item_id
            self._execute(m, st, SetImapUid(hashmap_ordered(list(uids.items()))))
            return uids

    def create_saved_search(self, m: int, name: str, query: str, *, types: str = "message",
                            sort: str = "dateDesc", parent_id: int = USER_ROOT,
                            color: int = 0) -> int:
        _check_name(name)
        with self._mailbox(m) as st:
            self._require_folder(m, parent_id)
            if self._query(f"SELECT 1 FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                           " AND folder_id = %s AND name = %s", (m, parent_id, name)):
                raise StateConflict(f"{name!r} already exists under {parent_id}")
            sid = st.last_item_id + 1
            st.last_item_id = sid
            self._execute(m, st, CreateSavedSearch(sid, str(uuid.UUID(int=(m << 64) | sid)),
                                                   name, query, types, sort, parent_id, 0,
                                                   color))
            return sid

    def modify_saved_search(self, m: int, search_id: int, query: str, *,
                            types: str = "message", sort: str = "dateDesc") -> None:
        with self._mailbox(m) as st:
            if self._item_type(m, search_id) != TYPE_SEARCH:
                raise UsageError(f"item {search_id} is not a saved search")
            self._execute(m, st, ModifySavedSearch(search_id, query, types, sort))

    def rename_item(self, m: int, item_id: int, name: str, *,
                    folder_id: int | None = None) -> None:
        """RenameItem, as Zimbra logs a rename of an item that is not a folder or a tag (here:
        a saved search), optionally into another folder."""
        _check_name(name)
        with self._mailbox(m) as st:
            typ = self._item_type(m, item_id)
            if typ != TYPE_SEARCH:
                raise UsageError(f"item {item_id} is not a saved search (folders: rename_folder)")
            rows = self._query(f"SELECT folder_id FROM {self._t(m, 'mail_item')} WHERE"
                               " mailbox_id = %s AND id = %s", (m, item_id))
            dest = rows[0][0] if folder_id is None else folder_id
            self._require_folder(m, dest)
            if self._query(f"SELECT 1 FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s"
                           " AND folder_id = %s AND name = %s AND id <> %s",
                           (m, dest, name, item_id)):
                raise StateConflict(f"{name!r} already exists under {dest}")
            self._execute(m, st, RenameItem(item_id, dest, name, typ))

    def copy(self, m: int, ids: list[int], dest_id: int) -> dict[int, int]:
        """CopyItem: copies of messages or contacts into a folder; {source id: copy id}."""
        with self._mailbox(m) as st:
            self._require_folder(m, dest_id)
            found = self._existing(m, ids, folder=False)
            types = {self._item_type(m, i) for i in found}
            if not found or not types <= {TYPE_MESSAGE, TYPE_CONTACT}:
                raise NotFound(f"mailbox {m}: no messages or contacts among {ids}")
            copies = {}
            for i in found:
                st.last_item_id += 1
                copies[i] = st.last_item_id
            entries = [(src, dst, str(uuid.UUID(int=(m << 64) | dst)))
                       for src, dst in hashmap_ordered(list(copies.items()))]
            typ = types.pop() if len(types) == 1 else TYPE_UNKNOWN
            self._execute(m, st, CopyItem(typ, dest_id, tuple(entries)))
            return copies

    def create_draft(self, m: int, raw: bytes) -> int:
        """A new draft, as Zimbra saves one: a CreateMessage into Drafts, \\Draft and \\Sent."""
        with self._mailbox(m) as st:
            draft_id = st.last_item_id + 1
            now = self.clock()
            op = CreateMessage(":API:", now, False, blobmod.digest(raw), len(raw), draft_id,
                               DRAFTS, flags=FLAG_DRAFT | FLAG_FROM_ME, no_ical=True,
                               body_type=BODY_INLINE, data=raw)
            st.last_item_id = draft_id
            self._execute(m, st, op, content=raw, at=now)
            return draft_id

    def save_draft(self, m: int, draft_id: int, raw: bytes) -> int:
        """SaveDraft: a draft's new body; returns the imap id Zimbra draws for it."""
        with self._mailbox(m) as st:
            rows = self._query(f"SELECT flags FROM {self._t(m, 'mail_item')} WHERE"
                               f" mailbox_id = %s AND id = %s AND type = {TYPE_MESSAGE}",
                               (m, draft_id))
            if not rows:
                raise NotFound(f"mailbox {m} has no message {draft_id}")
            if not rows[0][0] & FLAG_DRAFT:
                raise UsageError(f"message {draft_id} is not a draft")
            imap_id = st.last_item_id + 1
            st.last_item_id = imap_id
            now = self.clock()
            op = SaveDraft(imap_id, ":API:", now, False, blobmod.digest(raw), len(raw), draft_id,
                           -1, no_ical=True, body_type=BODY_INLINE, data=raw)
            self._execute(m, st, op, content=raw, at=now)
            return imap_id

    def set_config(self, m: int, section: str, config: dict[str, Any] | None) -> None:
        """SetConfig: a config section of the mailbox (None deletes it)."""
        if not section or len(section) > 64:
            raise UsageError(f"{section!r} is not a config section name (1-64 characters)")
        with self._mailbox(m) as st:
            self._execute(m, st, SetConfig(section, metadata.to_string(config)
                                           if config is not None else ""))

    def delete_config(self, m: int, section_part: str) -> None:
        """DeleteConfig: every config section LIKE `section_part` (e.g. "<device id>%")."""
        if not section_part:
            raise UsageError("delete_config needs a section pattern")
        with self._mailbox(m) as st:
            self._execute(m, st, DeleteConfig(section_part))

    def purge(self, m: int) -> list[int]:
        """PurgeOldMessages, if the account's lifetimes ask for a purge; the ids it deleted."""
        with self._mailbox(m) as st:
            if not self.effects.retention.lifetimes(st.account_id).rules():
                return []
            rec = self._execute(m, st, PurgeOldMessages())
            gone = tombstone_ids(self.conn().cursor(), self.groups, m, rec.change_id)
            self.conn().commit()
            return gone

    def set_account_attrs(self, account: str, attrs: dict[str, str | None]) -> dict[str, str]:
        """`zmprov ma`: an account's attributes in the directory (None removes one); returns
        the account's own attributes."""
        return self.directory.set_attrs(account, attrs).attributes()

    def index_item(self, m: int, item_id: int) -> None:
        with self._mailbox(m) as st:
            typ = self._item_type(m, item_id)
            self._execute(m, st, IndexItem(item_id, typ))

    # -- reads ------------------------------------------------------------------------------
    def items(self, m: int, *, folder_id: int | None = None, type: int | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
        cond, args = "", [m]
        if folder_id is not None:
            cond += " AND folder_id = %s"
            args.append(folder_id)
        if type is not None:
            cond += " AND type = %s"
            args.append(type)
        rows = self._query(f"SELECT id, type, folder_id, unread, flags, subject, mod_content"
                           f" FROM {self._t(m, 'mail_item')} WHERE mailbox_id = %s{cond}"
                           f" ORDER BY id LIMIT {int(limit)}", tuple(args))
        keys = ("id", "type", "folder_id", "unread", "flags", "subject", "mod_content")
        return [dict(zip(keys, r)) for r in rows]

    def read_message(self, m: int, item_id: int) -> bytes:
        rows = self._query(f"SELECT mod_content FROM {self._t(m, 'mail_item')} WHERE"
                           f" mailbox_id = %s AND id = %s AND type = {TYPE_MESSAGE}",
                           (m, item_id))
        if not rows:
            raise NotFound(f"mailbox {m} has no message {item_id}")
        return self.blobs.read(self.blobs.path(m, item_id, rows[0][0]))

    def search(self, m: int, query: str, limit: int = 50, *, wait: bool = True
               ) -> dict[str, Any]:
        """{"ids": best matches, "complete": bool, "pending": documents not yet indexed}.

        A mailbox whose index is behind (documents pending after a `--index defer` replay) is
        caught up first, under the mailbox's lock, as Zimbra indexes a mailbox's deferred items
        before searching it; with `wait=False` it is searched as it is and the answer says it is
        incomplete. An answer is never partial without `complete` being false."""
        with self.index.use(m, create=False) as idx:
            if idx is None:
                raise NotFound(f"mailbox {m} has no index")
            pending = idx.pending_count()
            if pending and wait:
                with self._mailbox(m):
                    done = catch_up_mailbox(idx, self.blobs, m)
                    pending = idx.pending_count()
                self.log.info("search_caught_up", mailbox=m, documents=done.documents,
                              pending=pending)
            try:
                ids = idx.search(query, limit)
            except sqlite3.OperationalError as e:
                raise UsageError(f"bad search query {query!r}: {e}") from e
            return {"ids": ids, "complete": pending == 0, "pending": pending}

    def index_status(self) -> dict[str, Any]:
        """The background catch-up's state and, per mailbox, the documents still pending."""
        behind = self.index.pending_counts()
        return {"catchup": self.catchup_state(), "mailboxes_behind": len(behind),
                "documents_pending": sum(behind.values()),
                "behind": {str(m): n for m, n in behind.items()}}

    def tags(self, m: int) -> list[dict[str, Any]]:
        rows = self._query(f"SELECT id, name FROM {self._t(m, 'tag')} WHERE mailbox_id = %s"
                           " ORDER BY id", (m,))
        return [{"id": r[0], "name": r[1]} for r in rows]

    def mailboxes(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT id, account_id, change_checkpoint FROM zimbra.mailbox"
                           " ORDER BY id")
        return [{"mailbox_id": r[0], "account_id": r[1], "change": r[2]} for r in rows]


def _contact_fields(attrs: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The fields as Zimbra's ParsedContact holds them, in the order its writer writes them."""
    fields = contact_fields(list(attrs.items()))
    if not fields:
        raise UsageError("contact must have fields", hint="give at least one non-empty field")
    return fields


def _check_name(name: str) -> None:
    if not name or len(name) > 128 or "/" in name or any(ord(ch) < 32 for ch in name):
        raise UsageError(f"{name!r} is not a valid name (1-128 characters, no '/' or controls)")
