"""What each redo op does to the three data volumes (database, blobs, index), one op at a time.

This module is the single definition of the ops' effects used by the live store (after logging a
change record), by crash recovery, and by the naive replay engine; the database statements are
in `statements` (`Effects` is a `Statements`). The fast replay engine computes the same final
state by folding; tests compare the two.

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

Besides the ops the store writes, Zimbra's other mail-item ops apply as their `redo()` does:
RenameItem, ColorItem (an item's metadata "c", a tag's color), DateItem, SetImapUid (the uids
the original run took from the item id counter), CreateSavedSearch/ModifySavedSearch (a search
folder row, its metadata q/t/s/c), SetCustomData (the item's metadata "xd.<section>"),
DeleteItemFromDumpster (nothing to purge: items are deleted for good, as with Zimbra's dumpster
off, its default), CopyItem and SaveDraft (rows as `itemrules` builds them; a copy gets its own
blob file with the source's bytes and the source's index document; a draft a new blob file
under its new content change number), SetConfig/DeleteConfig (`mailbox_config`) and
PurgeOldMessages (`purge`: the ids are computed again from the rows and the account's
lifetimes, `retention`). The blob and index volumes learn what a copy or a purge did from the
database (the copy rows, the purge's tombstones), which holds it whether it applied the op now
or before. Every other op (`APPLIED_OPS`) is outside the store's model and a replay reports it
as not applied.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from standby.redolog.ops import (
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
    StoreIncomingBlob,
)
from standby.redolog.record import Op, Record
from standby.store import blobs as blobmod
from standby.store import itemrules, purge
from standby.store.blobs import BlobStore
from standby.store.index import Doc, DeferringWriter, IndexMode, IndexStore
from standby.store.mime import MessageFields, message_fields
from standby.store.schema import group_of

from standby.store.shapes import (
    SYSTEM_FOLDER_IDS,
    SYSTEM_FOLDERS,
    TYPE_SEARCH,
    TYPE_TAG,
    Content,
    Outcome,
    contact_text,
)
from standby.store.statements import Statements

# Ops that change a mailbox (and so carry a change number).
MAILBOX_OPS = (CreateMailbox, DeleteMailbox, CreateFolder, RenameFolder, EmptyFolder, CreateTag,
               RenameTag, CreateMessage, SetItemTags, AlterItemTag, MoveItem, DeleteItem,
               CreateContact, ModifyContact, IndexItem, RenameItem, ColorItem, DateItem,
               SetImapUid, CreateSavedSearch, ModifySavedSearch, DeleteItemFromDumpster,
               SetCustomData, CopyItem, SaveDraft, SetConfig, DeleteConfig, PurgeOldMessages)
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


MessageOp = CreateMessage | SaveDraft  # ops that carry a message body (inline or linked)


class BlobSource(Protocol):
    """Where a message's bytes come from when the op does not carry them: a LINK delivery's
    (`linked`), and a copy's when its source's blob file is gone (`body`: a body with this
    digest that the mailbox received in the log being replayed)."""

    def linked(self, op: MessageOp, mailbox_id: int | None = None) -> bytes | None: ...

    def body(self, mailbox_id: int, digest: str) -> bytes | None: ...


class NoLinkedBlobs:
    def linked(self, op: MessageOp, mailbox_id: int | None = None) -> bytes | None:
        return None

    def body(self, mailbox_id: int, digest: str) -> bytes | None:
        return None


class IncomingBlobs:
    """Resolves LINK deliveries: from a StoreIncomingBlob seen in the log, else the staged file.

    `remember` takes a loader rather than the bytes so a replay can keep only a reference into
    the log file; an entry is dropped once every mailbox the blob was stored for has linked it.
    `remember_body` keeps, per mailbox and digest, a loader of each message body the log held,
    for copies whose source is gone from the database and the blob volume (the database ahead
    of the blob volume, the source deleted since).
    """

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._known: dict[str, tuple[Callable[[], bytes], set[int]]] = {}
        self._bodies: dict[tuple[int, str], Callable[[], bytes | None]] = {}

    def remember_body(self, mailbox_id: int, digest: str,
                      loader: Callable[[], bytes | None]) -> None:
        if digest:
            self._bodies[(mailbox_id, digest)] = loader

    def body(self, mailbox_id: int, digest: str) -> bytes | None:
        loader = self._bodies.get((mailbox_id, digest))
        data = loader() if loader is not None else None
        return data if data is not None and blobmod.digest(data) == digest else None

    def remember(self, op: StoreIncomingBlob, loader: Callable[[], bytes]) -> None:
        if op.path:
            self._known[op.path] = (loader, set(op.mailbox_ids or ()))

    def remember_bytes(self, op: StoreIncomingBlob) -> None:
        """`remember` with the blob bytes already in hand (the op was decoded with them)."""
        data: bytes = op.data
        self.remember(op, lambda: data)

    def linked(self, op: MessageOp, mailbox_id: int | None = None) -> bytes | None:
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


def copy_source(blobs: BlobStore, m: int, item_id: int, digest: str,
                mod_content: int | None) -> Path | None:
    """A blob file of `item_id` whose content has this digest: the one at `mod_content` if it
    matches, else any other revision of the item still on the volume (a copy's source may
    have changed or gone since the copy, when the database is ahead of the blob volume)."""
    if mod_content is not None:
        p = blobs.path(m, item_id, mod_content)
        if blobs.matches(p, digest):
            return p
    folder = blobs.path(m, item_id, 0).parent
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return None
    for name in names:
        parsed = blobmod.parse_blob_name(name)
        if parsed and parsed[0] == item_id and blobs.matches(folder / name, digest):
            return folder / name
    return None


class Effects(Statements):
    """Applies ops. Side effects come in: a DB connection per call, the blob and index stores."""

    def __init__(self, *, groups: int, blobs: BlobStore, index: IndexStore,
                 source: BlobSource | None = None,
                 on_warning: Callable[[str], None] | None = None,
                 retention: purge.RetentionSource | None = None) -> None:
        self.groups = groups
        self.blobs = blobs
        self.index = index
        self.source: BlobSource = source or NoLinkedBlobs()
        self.warn = on_warning or (lambda msg: None)
        self.retention: purge.RetentionSource = retention or purge.Retention()

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
        if data is None and isinstance(op, MessageOp):
            data = op.data if op.data is not None else self.source.linked(op, rec.mailbox_id)
        elif data is None and isinstance(op, CreateContact | ModifyContact):
            data = op.data
        c = Content(data)
        if isinstance(op, MessageOp) and data is None:
            out.blob = "missing-source"
        if "db" in volumes:
            self._apply_db(conn, rec, c, out)
        if "blob" in volumes and isinstance(op, CopyItem) and out.db != "missing":
            c.copies = self._copy_blobs(conn, rec, op)
        if "index" in volumes and isinstance(op, PurgeOldMessages) and c.deleted is None:
            c.deleted = self._tombstone_ids(conn, rec)
        if "blob" in volumes:
            self._apply_blob(rec, c, out)
        if "index" in volumes:
            self._apply_index(rec, c, out, index_mode)
        return out

    # -- database ---------------------------------------------------------------------------
    # -- blobs ------------------------------------------------------------------------------
    def _apply_blob(self, rec: Record, c: Content, out: Outcome) -> None:
        op, m = rec.op, rec.mailbox_id
        if isinstance(op, MessageOp):
            if c.data is None:
                out.blob = "missing-source"
                return
            written = self.blobs.ensure(self.blobs.path(m, op.msg_id, rec.change_id), c.data,
                                        op.digest or None)
            out.blob = "written" if written else "present"
        elif isinstance(op, CopyItem):
            for copy_id, src_id, src_mc, digest in c.copies:
                dest = self.blobs.path(m, copy_id, rec.change_id)
                if self.blobs.matches(dest, digest):
                    out.blob = "present" if out.blob == "none" else out.blob
                    continue
                src = copy_source(self.blobs, m, src_id, digest, src_mc)
                data = self.blobs.read(src) if src is not None else self.source.body(m, digest)
                if data is None:
                    out.blob = "missing-source"
                    self.warn(f"CopyItem {m}/{copy_id}: no blob of item {src_id} with its "
                              "content is left to copy")
                    continue
                self.blobs.ensure(dest, data, digest)
                out.blob = "written"
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

    def defer(self, item_id: int, type: int, folder_id: int, mod_content: int,
              text: tuple[str, str, str, str] | None = None) -> None: ...

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


def index_copy_item(e: Effects, idx: IndexWriter, rec: Record, op: Any,
                    c: Content) -> None:
    """Each copy gets the source's document (the same content), all or nothing as in the
    database, decided on what this index holds. A source whose document is still pending
    (`--index defer`) leaves the copy's pending too: the catch-up reads it from the copy's own
    blob, or takes the text the source's entry carries."""
    def type_of(item_id: int) -> int | None:
        row = idx.db.execute("SELECT type FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is not None:
            return int(row[0])
        folder = idx.db.execute("SELECT 1 FROM folders WHERE id = ?", (item_id,)).fetchone()
        return TYPE_FOLDER if folder else None

    if c.refused or itemrules.copy_refusal(op, type_of)[0]:
        return
    for src_id, copy_id, _uuid in op.entries:
        typ = type_of(src_id)
        assert typ is not None
        doc = idx.db.execute("SELECT subject, sender, recipients, body FROM docs WHERE"
                             " rowid = ?", (src_id,)).fetchone()
        if doc is None:
            pend = idx.db.execute("SELECT subject, sender, recipients, body FROM pending"
                                  " WHERE id = ?", (src_id,)).fetchone()
            if pend is not None:
                idx.defer(copy_id, typ, op.dest_folder_id, rec.change_id,
                          None if pend[0] is None else tuple(pend))
                continue
        idx.put(Doc(copy_id, typ, op.dest_folder_id, rec.change_id, *(doc or ("", "", "", ""))))


def index_save_draft(e: Effects, idx: IndexWriter, rec: Record, op: Any,
                     c: Content) -> None:
    """The draft's document from its new body, in the folder the index has it in."""
    row = idx.db.execute("SELECT type, folder_id FROM items WHERE id = ?",
                         (op.msg_id,)).fetchone()
    if row is None or row[0] != TYPE_MESSAGE or c.data is None or c.refused:
        return
    idx.put_message(op.msg_id, TYPE_MESSAGE, row[1], rec.change_id, lambda: c.fields)


def index_purge(e: Effects, idx: IndexWriter, rec: Record, op: Any, c: Content) -> None:
    """What the database's purge deleted (`Content.deleted`: items and folders)."""
    ids = c.deleted or []
    idx.remove(ids)
    idx.remove_folders(ids)


def index_noop(e: Effects, idx: IndexWriter, rec: Record, op: Any,
    c: Content) -> None:
    pass



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
    CopyItem: index_copy_item,
    SaveDraft: index_save_draft,
    PurgeOldMessages: index_purge,
}

# Ops whose effect on an index is more than raising its change number.
INDEXED_OPS: frozenset[type[Op]] = frozenset(INDEX_EFFECTS)
