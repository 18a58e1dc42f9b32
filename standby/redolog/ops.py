"""Every redo op Zimbra has (redo log version 1.42), declared once: opcode, layout, printed form.

Each class is Zimbra's `redolog/op/<Name>.java` read as data: `LAYOUT` is its `serializeData` /
`deserializeData` in wire order with their `getVersion().atLeast(...)` branches (see `layout`),
`TEXT` its `getPrintableData` (see `javafmt.compile_text`; None where Zimbra returns null).
`PARAMS` keeps the constructor order of the ops the store already wrote before the layouts
existed. The codec, equality, JSON (`Op.fields`) and zmredodump's text all come from these.

Quirks kept from Zimbra, byte for byte: the int16 -1 where a volume id used to be; the int32 -1
"id list follows" marker of id-list ops (an id > 0 there is a legacy single id); the boolean
`true` CreateInvite and GrantAccess still write. Where Zimbra's own reader cannot read what its
writer wrote we read the bytes anyway: CreateLink and CreateFileSharedWithMe log opcode 35
(CreateMountpoint) in their own layouts (the reader tries each, `record.ALTERNATIVES`); a
RevokeAccess due to expiry logs opcode 90 (ExpireAccess) and SetActiveSyncDisabled logs 91
(SetDisableActiveSync), which name no class. Opcodes with no class at all (MoveBlobs, Download,
Preview, Watch, Unwatch, View) are skipped by marker, as are opcodes Zimbra does not define.

Printing: calendar ops print an invite or timezone where Zimbra prints its calendar object model
re-encoded (`Invite.encodeMetadata`, `Util.encodeAsMetadata`); we print the Metadata read, decoded
and encoded again, which is the same text for the invites Zimbra writes. SetCalendarItem,
FixCalendarItemTZ and SetCalendarItem's replies, where Zimbra calls `Invite.toString()`,
`ICalTimeZone.toString()` and `ReplyInfo.toString()`, print that Metadata instead (the one place
the text is not Zimbra's).

Item types are Zimbra's `MailItem.Type` bytes; flags are Zimbra's bit masks (`FLAG_*`).
"""

from __future__ import annotations

from typing import Any

from standby.redolog import javafmt, javahash, optext, quirks
from standby.redolog.javafmt import FORMATS, If, jstr, type_name
from standby.redolog.layout import (
    BLOB,
    BOOL,
    BYTE,
    BYTES,
    INT,
    INTS,
    LONG,
    META,
    SHORT,
    UTF,
    UTF_ARRAY,
    Blob,
    Const,
    Expr,
    Field,
    ListOf,
    Optional,
    Seconds,
    Struct,
    f,
    hidden,
    req,
)
from standby.redolog.record import CLASSLESS, Op, register, register_alternative

__all__ = ["type_name"]

# MailItem.Type
TYPE_UNKNOWN, TYPE_FOLDER, TYPE_SEARCH, TYPE_TAG, TYPE_CONVERSATION = -1, 1, 2, 3, 4
TYPE_MESSAGE, TYPE_CONTACT, TYPE_DOCUMENT, TYPE_NOTE, TYPE_APPOINTMENT = 5, 6, 8, 9, 11
TYPE_MOUNTPOINT, TYPE_TASK, TYPE_CHAT, TYPE_COMMENT, TYPE_LINK = 13, 15, 16, 17, 18
TYPE_NAMES = javafmt.TYPE_NAMES

# Flag bit masks (Flag.FlagInfo: bitmask = 1 << (-id - 1)) and their names.
FLAG_FROM_ME, FLAG_ATTACHED, FLAG_REPLIED, FLAG_FORWARDED = 0x1, 0x2, 0x4, 0x8
FLAG_FLAGGED, FLAG_DRAFT, FLAG_DELETED, FLAG_UNREAD = 0x20, 0x40, 0x80, 0x200
FLAG_UNCHANGED = -0x80000000
FLAG_NAMES = quirks.FLAG_BITS

BODY_INLINE, BODY_LINK = 1, 2
MAX_BLOB_SIZE = 100 * 1024 * 1024  # StoreIncomingBlob.MAX_BLOB_SIZE

# MailboxOperation, by code.
OP_NAMES: dict[int, str] = {
    1: "Checkpoint", 3: "CommitTxn", 4: "AbortTxn", 6: "Rollover", 7: "CreateMailbox",
    8: "DeleteMailbox", 9: "BackupMailbox", 10: "ReindexMailbox", 11: "PurgeOldMessages",
    12: "CreateSavedSearch", 13: "ModifySavedSearch", 14: "CreateTag", 15: "RenameTag",
    16: "ColorItem", 17: "IndexItem", 18: "AlterItemTag", 19: "SetItemTags", 20: "MoveItem",
    21: "DeleteItem", 22: "CopyItem", 23: "CreateFolderPath", 24: "RenameFolderPath",
    25: "EmptyFolder", 26: "StoreIncomingBlob", 27: "CreateMessage", 28: "SaveDraft",
    29: "SetImapUid", 30: "CreateContact", 31: "ModifyContact", 32: "CreateNote",
    33: "EditNote", 34: "RepositionNote", 35: "CreateMountpoint", 36: "ModifyInviteFlag",
    37: "ModifyInvitePartStat", 38: "CreateVolume", 39: "ModifyVolume", 40: "DeleteVolume",
    41: "SetCurrentVolume", 42: "MoveBlobs", 43: "CreateInvite", 44: "SetCalendarItem",
    45: "TrackSync", 46: "SetConfig", 47: "GrantAccess", 48: "RevokeAccess",
    49: "SetFolderUrl", 50: "SetSubscriptionData", 51: "SetPermissions", 52: "SaveWiki",
    53: "SaveDocument", 54: "AddDocumentRevision", 55: "TrackImap", 56: "ImapCopyItem",
    57: "ICalReply", 58: "CreateFolder", 59: "RenameFolder", 60: "FixCalendarItemTimeZone",
    61: "RenameItem", 62: "RenameItemPath", 63: "CreateChat", 64: "SaveChat",
    65: "PurgeImapDeleted", 66: "DismissCalendarItemAlarm", 67: "FixCalendarItemEndTime",
    68: "IndexDeferredItems", 69: "RenameMailbox", 70: "FixCalendarItemTZ", 71: "DateItem",
    72: "SetFolderDefaultView", 73: "SetCustomData", 74: "LockItem", 75: "UnlockItem",
    76: "PurgeRevision", 77: "DeleteItemFromDumpster", 78: "FixCalendarItemPriority",
    79: "RecoverItem", 80: "EnableSharedReminder", 81: "Download", 82: "Preview",
    83: "SnoozeCalendarItemAlarm", 84: "CreateComment", 85: "CreateLink",
    86: "SetRetentionPolicy", 87: "Watch", 88: "Unwatch", 89: "RefreshMountpoint",
    90: "ExpireAccess", 91: "SetDisableActiveSync", 92: "SetWebOfflineSyncDays",
    93: "DeleteConfig", 94: "View", 95: "SetPop3Uid",
}
CLASSLESS.update({c: OP_NAMES[c] for c in (42, 81, 82, 87, 88, 94)})


def op_name(opcode: int) -> str:
    return OP_NAMES.get(opcode, f"Unknown({opcode})")


FORMATS["opname"] = op_name
FORMATS["tagid"] = lambda name: str(quirks.legacy_tag_id(name))


# --------------------------------------------------------------------------------------------
# Shared pieces of layouts

LEGACY_ID = hidden("first_id", INT, -1)  # -1: "the id list follows"; > 0: one legacy id
IDS = f("ids", INTS, (), when="first_id <= 0", absent=Expr("(first_id,)"))
CONSTRAINT = f("constraint", Optional(UTF))
VOLUME_ID = hidden("volume_id_", SHORT, -1)  # Zimbra writes -1 where a volume id used to be
COLOR = f("color", LONG, 0, since=(1, 27), before=BYTE)
TAGS = f("tags", UTF_ARRAY, gates=(((1, 33), UTF_ARRAY), ((0, 0), quirks.TagIdString())))


def custom(since: tuple[int, int] | None = None) -> tuple[Field, Field]:
    """A CustomMetadata: section key (null: none), then its serialized value."""
    return (f("custom_key", UTF, since=since),
            f("custom_value", UTF, when="custom_key is not None"))


# --------------------------------------------------------------------------------------------
# Control records


class Checkpoint(Op):
    OPCODE, NAME = 1, "Checkpoint"
    LAYOUT = (f("txns", ListOf(Struct(req("time", INT), req("counter", INT)), min_item=8,
                               dedup=True), ()),)
    TEXT = staticmethod(lambda o, v: None if not o.txns else (
        f"{len(o.txns)} active txns: " + ", ".join(f"{t}.{c}" for t, c in o.txns)))


class CommitTxn(Op):
    OPCODE, NAME = 3, "CommitTxn"
    LAYOUT = (req("txn_opcode", INT),)
    TEXT = "txnType={txn_opcode:opname}"


class AbortTxn(Op):
    OPCODE, NAME = 4, "AbortTxn"
    LAYOUT = CommitTxn.LAYOUT
    TEXT = CommitTxn.TEXT


class Rollover(Op):
    OPCODE, NAME = 6, "Rollover"
    LAYOUT = (req("seq", LONG), req("filename", UTF))
    TEXT = "seq={seq}, filename={filename}"


# --------------------------------------------------------------------------------------------
# Mailboxes


class CreateMailbox(Op):
    OPCODE, NAME = 7, "CreateMailbox"
    LAYOUT = (req("account_id", UTF),)
    TEXT = ("account=", If("account_id is not None", "{account_id}"))


class DeleteMailbox(Op):
    OPCODE, NAME = 8, "DeleteMailbox"
    LAYOUT = ()
    TEXT = None


class BackupMailbox(Op):
    OPCODE, NAME = 9, "BackupMailbox"
    LAYOUT = (f("backup_set_tstamp", LONG, 0), f("start_time", LONG, 0), f("end_time", LONG, 0),
              f("label", UTF, ""))
    TEXT = ("backupSetTstamp={backup_set_tstamp}, startTime={start_time}, endTime={end_time}",
            If("label is not None", 'label="{label}"'))


class ReindexMailbox(Op):
    OPCODE, NAME = 10, "ReindexMailbox"
    LAYOUT = (f("completion_id", INT, 0, since=(1, 9)),
              f("types", Optional(ListOf(BYTE)), since=(1, 9)),
              f("item_ids", Optional(ListOf(INT, min_item=4)), since=(1, 10)),
              f("skip_delete", BOOL, False, since=(1, 20)))
    TEXT = staticmethod(optext.reindex_mailbox)


class PurgeOldMessages(Op):
    OPCODE, NAME = 11, "PurgeOldMessages"
    LAYOUT = ()
    TEXT = None


class RenameMailbox(Op):
    OPCODE, NAME = 69, "RenameMailbox"
    LAYOUT = (req("new_name", UTF), f("old_name", UTF, since=(1, 25)))
    TEXT = "newName={new_name} oldName={old_name}"


class TrackSync(Op):
    OPCODE, NAME = 45, "TrackSync"
    LAYOUT = ()
    TEXT = None


class TrackImap(Op):
    OPCODE, NAME = 55, "TrackImap"
    LAYOUT = ()
    TEXT = None


class SetConfig(Op):
    OPCODE, NAME = 46, "SetConfig"
    LAYOUT = (f("section", UTF, ""), f("config", META, ""))
    TEXT = ("section={section}, config=", If("config == ''", "null"),
            If("config != ''", "{config}"))


class DeleteConfig(Op):
    OPCODE, NAME = 93, "DeleteConfig"
    LAYOUT = (req("section", UTF),)
    TEXT = "sectionPart={section}"


# --------------------------------------------------------------------------------------------
# Folders, searches, tags, mountpoints


class CreateFolder(Op):
    OPCODE, NAME = 58, "CreateFolder"
    LAYOUT = (req("name", UTF), req("parent_id", INT), f("attrs", BYTE, 0, since=(1, 19)),
              f("view", BYTE, TYPE_UNKNOWN), f("flags", INT, 0), COLOR, f("url", UTF, ""),
              f("folder_id", INT, -1), f("uuid", UTF, since=(1, 37)),
              f("date", Optional(LONG), gates=(((1, 40), Optional(LONG)),
                                               ((1, 39), Optional(Seconds())))),
              *custom(since=(1, 41)))
    TEXT = staticmethod(lambda o, v: (
        f"name={o.name}, parent={o.parent_id}, attrs={o.attrs}, view={type_name(o.view)}, "
        f"flags={o.flags}, color={o.color}, url={o.url}, id={o.folder_id}, "
        f"uuid={jstr(o.uuid)}, date={jstr(o.date)}, "
        f"custom={optext.custom(o.custom_key, o.custom_value)}"))


class CreateFolderPath(Op):
    OPCODE, NAME = 23, "CreateFolderPath"
    LAYOUT = (req("path", UTF), f("attrs", BYTE, 0), f("view", BYTE, TYPE_UNKNOWN),
              f("flags", INT, 0), COLOR, f("url", UTF, ""),
              f("date", Optional(LONG), since=(1, 41)), *custom(since=(1, 41)),
              f("folders", ListOf(Struct(req("id", INT), f("uuid", UTF, since=(1, 37))),
                                  min_item=4), ()))
    TEXT = staticmethod(lambda o, v: (
        f"name={o.path}, attrs={o.attrs}, view={type_name(o.view)}, flags={o.flags}, "
        f"color={o.color}, url={o.url}, date={jstr(o.date)}, "
        f"custom={optext.custom(o.custom_key, o.custom_value)}"
        + (f", folderIdsAndUuids=[{optext.ids_and_uuids(o.folders)}]" if o.folders else "")))


class RenameFolder(Op):
    """Rename and/or move a folder: `parent_id` is the (new) parent."""

    OPCODE, NAME = 59, "RenameFolder"
    LAYOUT = (req("folder_id", INT), req("parent_id", INT), req("name", UTF))
    TEXT = "id={folder_id}, type=folder, name={name},parent={parent_id}, date=null"


class RenameFolderPath(Op):
    OPCODE, NAME = 24, "RenameFolderPath"
    LAYOUT = (req("folder_id", INT), req("path", UTF),
              f("parent_ids", ListOf(INT, min_item=4), ()))
    # RenameItemPath's text; this class never reads the uuids (Java's toString would throw).
    TEXT = staticmethod(lambda o, v: f"id={o.folder_id}, type=folder, path={o.path}" + (
        f", destParentIdsAndUuids=[{optext.ids_and_uuids(tuple((p,) for p in o.parent_ids))}]"
        if o.parent_ids else ""))


class EmptyFolder(Op):
    OPCODE, NAME = 25, "EmptyFolder"
    LAYOUT = (req("folder_id", INT), f("subfolders", BOOL, False))
    TEXT = "id={folder_id}, subfolders={subfolders}"


class SetFolderDefaultView(Op):
    OPCODE, NAME = 72, "SetFolderDefaultView"
    LAYOUT = (req("folder_id", INT), f("view", BYTE, TYPE_UNKNOWN))
    TEXT = "id={folder_id}, view={view:type}"


class SetFolderUrl(Op):
    OPCODE, NAME = 49, "SetFolderUrl"
    LAYOUT = (req("folder_id", INT), f("url", UTF, ""))
    TEXT = "id={folder_id}, url={url}"


class SetSubscriptionData(Op):
    OPCODE, NAME = 50, "SetSubscriptionData"
    LAYOUT = (req("folder_id", INT), f("last_item_date", LONG, 0), f("last_item_guid", UTF, ""))
    TEXT = "id={folder_id}, date={last_item_date}, guid={last_item_guid}"


class SetActiveSyncDisabled(Op):
    OPCODE, NAME, CLASS = 91, "SetDisableActiveSync", "SetActiveSyncDisabled"
    LAYOUT = (req("folder_id", INT), f("disabled", BOOL, False))
    TEXT = "id={folder_id}, disableActiveSync={disabled:TF}"


class SetWebOfflineSyncDays(Op):
    OPCODE, NAME = 92, "SetWebOfflineSyncDays"
    LAYOUT = (req("folder_id", INT), f("days", INT, 0))
    TEXT = "id={folder_id}, webofflinesyncdays={days}"


class SetRetentionPolicy(Op):
    OPCODE, NAME = 86, "SetRetentionPolicy"
    LAYOUT = (req("type", quirks.RETENTION_TYPE), req("item_id", INT),
              f("keep", ListOf(Struct(f("id", UTF), f("lifetime", UTF)), min_item=8), ()),
              f("purge", ListOf(Struct(f("id", UTF), f("lifetime", UTF)), min_item=8), ()))
    TEXT = staticmethod(lambda o, v: "retentionPolicy=" + javafmt.to_string_helper(
        "RetentionPolicy", ("keep", optext.Raw(optext.policies(o.keep))),
        ("purge", optext.Raw(optext.policies(o.purge)))))


class CreateSavedSearch(Op):
    OPCODE, NAME = 12, "CreateSavedSearch"
    LAYOUT = (f("search_id", INT, 0), f("uuid", UTF, since=(1, 37)), f("name", UTF, ""),
              f("query", UTF, ""), f("types", UTF, ""), f("sort", UTF, ""),
              req("folder_id", INT), f("flags", INT, 0, since=(1, 28)), COLOR)
    TEXT = ("id={search_id}, uuid={uuid}, name={name}, query={query}, types={types}, "
            "sort={sort}, flags={flags}, color={color}")


class ModifySavedSearch(Op):
    OPCODE, NAME = 13, "ModifySavedSearch"
    LAYOUT = (req("search_id", INT), f("query", UTF, ""), f("types", UTF, ""), f("sort", UTF, ""))
    TEXT = "id={search_id}, query={query}, types={types}, sort={sort}"


class CreateTag(Op):
    OPCODE, NAME = 14, "CreateTag"
    LAYOUT = (req("tag_id", INT), req("name", UTF), COLOR)
    TEXT = "id={tag_id}, name={name}, color={color}"


class RenameTag(Op):
    OPCODE, NAME = 15, "RenameTag"
    LAYOUT = (req("tag_id", INT), req("name", UTF))
    TEXT = "id={tag_id}, type=tag, name={name},parent=8, date=null"


class CreateMountpoint(Op):
    OPCODE, NAME = 35, "CreateMountpoint"
    LAYOUT = (f("mountpoint_id", INT, 0), f("uuid", UTF, since=(1, 37)), f("name", UTF, ""),
              f("owner_id", UTF), f("remote_id", INT, 0), f("remote_uuid", UTF, since=(1, 38)),
              req("folder_id", INT), f("view", BYTE, TYPE_UNKNOWN), f("flags", INT, 0), COLOR,
              f("reminder", BOOL, False, since=(1, 33)))
    TEXT = ("id={mountpoint_id}, uuid={uuid}, name={name}, folder={folder_id}, owner={owner_id}, "
            "remoteId={remote_id}, remoteUuid={remote_uuid}, view={view:type}, flags={flags}, "
            "color={color}, reminder={reminder}")


class CreateLink(Op):
    """Logs opcode 35 (its constructor says CreateMountpoint) in its own layout."""

    OPCODE, NAME, CLASS = 35, "CreateMountpoint", "CreateLink"
    LAYOUT = (f("link_id", INT, 0), f("uuid", UTF, since=(1, 37)), f("name", UTF, ""),
              f("owner_id", UTF), f("remote_id", INT, 0), req("folder_id", INT))
    TEXT = ("id={link_id}, uuid={uuid}, name={name}, folder={folder_id}, owner={owner_id}, "
            "remote={remote_id}")


class CreateFileSharedWithMe(Op):
    """Logs opcode 35 as well, in the order its serializeData writes (its deserializeData reads
    another order; Zimbra never calls it, the opcode's class being CreateMountpoint)."""

    OPCODE, NAME, CLASS = 35, "CreateMountpoint", "CreateFileSharedWithMe"
    LAYOUT = (f("mountpoint_id", INT, 0), f("uuid", UTF), f("name", UTF, ""), f("owner_id", UTF),
              f("remote_id", INT, 0), f("remote_uuid", UTF), req("folder_id", INT),
              f("owner_name", UTF), f("content_type", UTF), f("rights", UTF))
    TEXT = ("id={mountpoint_id}, uuid={uuid}, name={name}, folder={folder_id}, owner={owner_id}, "
            "remoteId={remote_id}, remoteUuid={remote_uuid}")


class RefreshMountpoint(Op):
    OPCODE, NAME = 89, "RefreshMountpoint"
    LAYOUT = (req("mountpoint_id", INT), f("owner_id", UTF), f("remote_id", INT, 0))
    TEXT = "id={mountpoint_id}, owner={owner_id}, remoteId={remote_id}"


class EnableSharedReminder(Op):
    OPCODE, NAME = 80, "EnableSharedReminder"
    LAYOUT = (req("mountpoint_id", INT), f("enabled", BOOL, False))
    TEXT = "mountpoint={mountpoint_id}, reminderEnabled={enabled}"


class GrantAccess(Op):
    OPCODE, NAME = 47, "GrantAccess"
    LAYOUT = (req("folder_id", INT), f("grantee", UTF, ""), f("grantee_type", BYTE, 0),
              f("rights", SHORT, 0), hidden("inherit", BOOL, True),
              f("password", UTF, "", since=(1, 2), absent=None),
              f("expiry", LONG, 0, since=(1, 36)))
    TEXT = ("id={folder_id}, grantee={grantee}, type={grantee_type}, rights={rights:rights}, "
            "args={password}, expiry={expiry}")


class RevokeAccess(Op):
    OPCODE, NAME = 48, "RevokeAccess"
    LAYOUT = (req("folder_id", INT), f("grantee", UTF, ""),
              f("due_to_expiry", BOOL, False, since=(1, 39)))
    TEXT = ("id={folder_id}, grantee={grantee}", If("due_to_expiry", ", dueToExpiry=true"))

    @property
    def printed_name(self) -> str:
        return "ExpireAccess" if self.due_to_expiry else self.NAME


class ExpireAccess(Op):
    """A RevokeAccess due to expiry: logged with this opcode, which names no class."""

    OPCODE, NAME, CLASS = 90, "ExpireAccess", "RevokeAccess"
    LAYOUT = RevokeAccess.LAYOUT
    TEXT = RevokeAccess.TEXT


class SetPermissions(Op):
    OPCODE, NAME = 51, "SetPermissions"
    LAYOUT = (req("folder_id", INT), f("acl", UTF, ""))
    TEXT = "id={folder_id}, acl={acl}"


# --------------------------------------------------------------------------------------------
# Messages and other blobs


class StoreIncomingBlob(Op):
    """A blob delivered to several mailboxes, logged once (header mailbox -1)."""

    OPCODE, NAME = 26, "StoreIncomingBlob"
    # No mailbox list before 1.0 (Zimbra reads none: null, printed as []).
    LAYOUT = (f("mailbox_ids", ListOf(LONG), gates=(
                  ((1, 26), ListOf(LONG, min_item=8, empty_is_none=True, limit=1_000_000)),
                  ((1, 0), ListOf(INT, min_item=4, empty_is_none=True, limit=1_000_000)))),
              f("digest", UTF), f("path", UTF), VOLUME_ID, f("msg_size", INT, 0),
              f("data", BLOB, b""))
    TEXT = staticmethod(lambda o, v: (
        f'blobDigest="{jstr(o.digest)}", size={o.msg_size}, dataLen={len(o.data)}, '
        f"path={jstr(o.path)}, mbox={'[]' if o.mailbox_ids is None else jstr(o.mailbox_ids)}"))


MESSAGE = (f("rcpt", UTF, ""), f("rcv_date", LONG, 0, since=(1, 4)), f("shared", BOOL, False),
           f("digest", UTF, ""), f("msg_size", LONG, 0, since=(1, 42), before=INT),
           f("msg_id", INT, 0), f("folder_id", INT, 0), f("conv_id", INT, -1),
           # Before 1.5 Zimbra keeps its constructor's UNKNOWN_ID (0), not the -1 writers send.
           f("conv_first_msg_id", INT, -1, since=(1, 5), absent=0),
           f("merged_conv_ids", INTS, (), since=(1, 32)), f("cal_item_id", INT, 0),
           f("part_stat", UTF, "NE", since=(1, 1)), f("flags", INT, 0),
           f("no_ical", BOOL, False), TAGS, f("path", UTF), VOLUME_ID, *custom(since=(1, 25)),
           f("body_type", BYTE, BODY_INLINE),
           f("data", BLOB, None, when=f"body_type == {BODY_INLINE}",
             otherwise=Const(SHORT, -1)))


class _MessageOp(Op):
    """Shared behaviour of CreateMessage's family: a LINK body carries no bytes; before 1.4 the
    received date is the op's time."""

    OP_TIME_BEFORE = {"rcv_date": (1, 4)}

    def _post_init(self) -> None:
        if self.body_type != BODY_INLINE:
            self.data = None
        elif self.data is None:
            self.data = b""


class CreateMessage(_MessageOp):
    OPCODE, NAME = 27, "CreateMessage"
    LAYOUT = MESSAGE
    TEXT = staticmethod(optext.message)


class SaveDraft(_MessageOp):
    OPCODE, NAME = 28, "SaveDraft"
    LAYOUT = (f("imap_id", INT, 0), *MESSAGE)
    TEXT = staticmethod(lambda o, v: optext.message(o, v) + f",imap={o.imap_id}")


class CreateChat(_MessageOp):
    OPCODE, NAME = 63, "CreateChat"
    LAYOUT = MESSAGE
    TEXT = staticmethod(optext.message)


class SaveChat(_MessageOp):
    OPCODE, NAME = 64, "SaveChat"
    LAYOUT = SaveDraft.LAYOUT
    TEXT = SaveDraft.TEXT


DOCUMENT = (f("filename", UTF), f("mime_type", UTF), f("author", UTF),
            f("item_type", BYTE, TYPE_DOCUMENT), f("description", UTF, since=(1, 29)),
            f("desc_enabled", BOOL, True, since=(1, 31)), f("uuid", UTF, since=(1, 37)),
            *MESSAGE)


def _document_text(o: Any, version: Any) -> str:
    return f"uuid={jstr(o.uuid)}, " + optext.message(o, version)


class SaveDocument(_MessageOp):
    OPCODE, NAME = 53, "SaveDocument"
    LAYOUT = DOCUMENT
    TEXT = staticmethod(_document_text)


class AddDocumentRevision(_MessageOp):
    OPCODE, NAME = 54, "AddDocumentRevision"
    LAYOUT = (f("doc_id", INT, 0), *DOCUMENT)
    TEXT = staticmethod(_document_text)


class SaveWiki(_MessageOp):
    OPCODE, NAME = 52, "SaveWiki"
    LAYOUT = (f("wikiword", UTF), *DOCUMENT)
    TEXT = staticmethod(_document_text)


# --------------------------------------------------------------------------------------------
# Item changes


class SetItemTags(Op):
    OPCODE, NAME = 19, "SetItemTags"
    LAYOUT = (LEGACY_ID, req("type", BYTE), req("flags", INT), f("tags", UTF_ARRAY, since=(1, 33)),
              f("tag_bits", LONG, 0, until=(1, 33)), CONSTRAINT, IDS)
    PARAMS = ("type", "flags", "tags", "ids", "constraint", "tag_bits")
    TEXT = ("ids={ids}, type={type:type}, flags=[{flags}], tags=[{tags:tags}]",
            If("constraint is not None", ", constraint={constraint}"))


class AlterItemTag(Op):
    """Set or clear one flag (by its `\\Name`) or one tag (by name) on items."""

    OPCODE, NAME = 18, "AlterItemTag"
    LAYOUT = (LEGACY_ID, req("type", BYTE),
              req("tag", UTF, gates=(((1, 33), UTF), ((0, 0), quirks.LegacyTagId()))),
              req("tagged", BOOL), CONSTRAINT, IDS)
    PARAMS = ("type", "tag", "tagged", "ids", "constraint")
    # Before 1.33 Zimbra holds and prints the tag's id (mTagId); redo() resolves the name.
    TEXT = ("ids={ids}, type={type:type}, tag=",
            If("version is None or version >= (1, 33)", "{tag}"),
            If("version is not None and version < (1, 33)", "{tag:tagid}"),
            ", tagged={tagged}", If("constraint is not None", ", constraint={constraint}"))


class ColorItem(Op):
    OPCODE, NAME = 16, "ColorItem"
    LAYOUT = (LEGACY_ID, req("type", BYTE), COLOR, IDS)
    PARAMS = ("type", "color", "ids")
    TEXT = "id={ids}, color={color}"


class MoveItem(Op):
    OPCODE, NAME = 20, "MoveItem"
    LAYOUT = (LEGACY_ID, req("type", BYTE), req("dest_id", INT), CONSTRAINT, IDS,
              f("uidnext", INT, -1, since=(1, 16)))
    PARAMS = ("type", "dest_id", "ids", "constraint", "uidnext")
    TEXT = ("id={ids}, type={type:type}, dest={dest_id}",
            If("constraint is not None", ", constraint={constraint}"),
            If("uidnext != -1", ", uidnext={uidnext}"))


class DeleteItem(Op):
    OPCODE, NAME = 21, "DeleteItem"
    LAYOUT = (LEGACY_ID, req("type", BYTE), CONSTRAINT, IDS)
    PARAMS = ("type", "ids", "constraint")
    TEXT = ("ids={ids}, type={type:type}",
            If("constraint is not None", ", constraint={constraint}"))


COPY = (hidden("first_src", INT, -1), hidden("first_dest", INT, -1), f("type", BYTE, TYPE_UNKNOWN),
        f("dest_folder_id", INT, 0), VOLUME_ID,
        f("entries", ListOf(Struct(req("src_id", INT), req("dest_id", INT),
                                   f("dest_uuid", UTF, since=(1, 37))), min_item=8), (),
          when="not (first_src > 0 and first_dest > 0)",
          absent=Expr("((first_src, first_dest, None),)")),
        f("from_dumpster", BOOL, False, since=(1, 30)))


class CopyItem(Op):
    """`entries` are (source id, copy id, copy uuid), in the writer's HashMap order."""

    OPCODE, NAME = 22, "CopyItem"
    LAYOUT = COPY
    TEXT = staticmethod(lambda o, v: (
        f"type={type_name(o.type)}, destFolder={o.dest_folder_id}, [srcId, destId, destUuid]="
        + optext.id_map(o.entries) + (", fromDumpster=true" if o.from_dumpster else "")))


class RecoverItem(Op):
    """A CopyItem out of the dumpster (its reader forces fromDumpster afterwards)."""

    OPCODE, NAME = 79, "RecoverItem"
    LAYOUT = COPY
    TEXT = staticmethod(lambda o, v: (
        f"type={type_name(o.type)}, destFolder={o.dest_folder_id}, [srcId, destId, destUuid]="
        + optext.id_map(o.entries) + ", fromDumpster=true"))


class ImapCopyItem(Op):
    OPCODE, NAME = 56, "ImapCopyItem"
    LAYOUT = (f("type", BYTE, TYPE_UNKNOWN), f("dest_folder_id", INT, 0), VOLUME_ID,
              f("entries", ListOf(Struct(req("src_id", INT), req("dest_id", INT),
                                         hidden("unused", INT, -1),
                                         f("dest_uuid", UTF, since=(1, 37))), min_item=12), ()))
    TEXT = staticmethod(lambda o, v: (
        f"type={type_name(o.type)}, destFolder={o.dest_folder_id}, [srcId, destId, destUuid]="
        + optext.id_map(o.entries)))


class RenameItem(Op):
    OPCODE, NAME = 61, "RenameItem"
    LAYOUT = (req("item_id", INT), req("folder_id", INT), req("name", UTF),
              f("type", BYTE, TYPE_UNKNOWN), f("date", Optional(LONG), since=(1, 40)))
    TEXT = "id={item_id}, type={type:type}, name={name},parent={folder_id}, date={date}"


class RenameItemPath(Op):
    OPCODE, NAME = 62, "RenameItemPath"
    LAYOUT = (req("item_id", INT), req("path", UTF),
              f("parents", ListOf(Struct(req("id", INT), f("uuid", UTF, since=(1, 37))),
                                  min_item=4), ()),
              f("type", BYTE, TYPE_UNKNOWN))
    TEXT = staticmethod(lambda o, v: (
        f"id={o.item_id}, type={type_name(o.type)}, path={o.path}"
        + (f", destParentIdsAndUuids=[{optext.ids_and_uuids(o.parents)}]" if o.parents else "")))


class DateItem(Op):
    OPCODE, NAME = 71, "DateItem"
    LAYOUT = (req("item_id", INT), f("type", BYTE, TYPE_UNKNOWN), req("date", LONG))
    TEXT = "id={item_id}, date={date}"


class SetCustomData(Op):
    """Set (or, with an empty value, remove) one custom metadata section of an item."""

    OPCODE, NAME = 73, "SetCustomData"
    LAYOUT = (req("item_id", INT), f("type", BYTE, TYPE_UNKNOWN), req("custom_key", UTF),
              f("custom_value", UTF))
    TEXT = staticmethod(lambda o, v: (
        f"id={o.item_id}, data={optext.custom(o.custom_key, o.custom_value)}"))


class SetImapUid(Op):
    """`uids` are (message id, new IMAP uid) in the writer's HashMap order."""

    OPCODE, NAME = 29, "SetImapUid"
    LAYOUT = (f("uids", ListOf(Struct(req("msg_id", INT), req("imap_id", INT)), min_item=8), ()),)
    TEXT = staticmethod(lambda o, v: ", ".join(
        f"{k}={dict(o.uids)[k]}" for k in javahash.hashmap_order([u for u, _ in o.uids])))


class SetPop3Uid(Op):
    OPCODE, NAME = 95, "SetPop3Uid"
    LAYOUT = (req("item_id", INT), f("type", BYTE, TYPE_UNKNOWN), f("uid", UTF))
    TEXT = "id={item_id}, pop3uid={uid}"


class LockItem(Op):
    OPCODE, NAME = 74, "LockItem"
    LAYOUT = (f("type", BYTE, TYPE_UNKNOWN), f("account_id", UTF), req("item_id", INT))
    TEXT = "id={item_id}, type={type:type}, accountId={account_id}"


class UnlockItem(Op):
    OPCODE, NAME = 75, "UnlockItem"
    LAYOUT = LockItem.LAYOUT
    TEXT = LockItem.TEXT


class PurgeRevision(Op):
    OPCODE, NAME = 76, "PurgeRevision"
    LAYOUT = (req("item_id", INT), req("revision", INT), f("include_older", BOOL, False))
    TEXT = "id={item_id}, rev={revision}, includeOlderRevisions={include_older}"


class DeleteItemFromDumpster(Op):
    OPCODE, NAME = 77, "DeleteItemFromDumpster"
    LAYOUT = (f("ids", INTS, ()),)
    TEXT = "ids={ids}"


class PurgeImapDeleted(Op):
    OPCODE, NAME = 65, "PurgeImapDeleted"
    LAYOUT = ()
    TEXT = None


class IndexItem(Op):
    OPCODE, NAME = 17, "IndexItem"
    LAYOUT = (req("item_id", INT), req("type", BYTE), f("delete_first", BOOL, False, since=(1, 8)))
    TEXT = "id={item_id}, type={type:type}"


class IndexDeferredItems(Op):
    """`items` are (id, type) pairs (written as the ids, then the types)."""

    OPCODE, NAME = 68, "IndexDeferredItems"
    LAYOUT = (f("items", quirks.IdsAndTypes(), ()),)
    TEXT = staticmethod(lambda o, v: "".join(f"{i}," for i, _ in o.items))


class CreateComment(Op):
    OPCODE, NAME = 84, "CreateComment"
    LAYOUT = (f("item_id", INT, 0), f("uuid", UTF, since=(1, 37)), req("parent_id", INT),
              f("creator_id", UTF), f("text", UTF))
    TEXT = ("id={item_id}, uuid={uuid}, creator={creator_id}, text={text}, "
            "parentId={parent_id}")


# --------------------------------------------------------------------------------------------
# Contacts


ATTRS = ListOf(Struct(req("key", UTF), req("value", UTF)), SHORT, min_item=8)


class _Attrs(ListOf):
    """Contact fields: (name, value) pairs in the writer's HashMap order; JSON as an object."""

    def json(self, v: Any) -> Any:
        return dict(v or ())


CONTACT_ATTRS = _Attrs(Struct(req("key", UTF), req("value", UTF)), SHORT, min_item=8)
CONTACT_BLOB = Blob(limit=MAX_BLOB_SIZE, none_if_empty=True)


class CreateContact(Op):
    OPCODE, NAME = 30, "CreateContact"
    LAYOUT = (f("contact_id", INT, 0), req("folder_id", INT), VOLUME_ID, TAGS,
              f("attrs", CONTACT_ATTRS, ()), f("data", CONTACT_BLOB, b"", since=(1, 14)))
    PARAMS = ("contact_id", "folder_id", "attrs", "tags", "data")
    # Before 1.33 the record holds tag ids (mTagIds); Zimbra prints mTags, null then.
    TEXT = staticmethod(lambda o, v: (
        f'folder={o.folder_id}, tags="'
        f'{javafmt.encode_tags(o.tags if v is None or v >= (1, 33) else None)}"'
        + optext.contact_attrs(o.attrs)))


class ModifyContact(Op):
    OPCODE, NAME = 31, "ModifyContact"
    LAYOUT = (req("contact_id", INT), hidden("replace", BOOL, False, until=(1, 14)),
              f("attrs", CONTACT_ATTRS, ()), hidden("volume_id_", SHORT, -1, since=(1, 14)),
              f("data", CONTACT_BLOB, b"", since=(1, 14)))
    TEXT = staticmethod(lambda o, v: f"id={o.contact_id}" + optext.contact_attrs(o.attrs))


# --------------------------------------------------------------------------------------------
# Notes


class CreateNote(Op):
    OPCODE, NAME = 32, "CreateNote"
    LAYOUT = (f("note_id", INT, 0), req("folder_id", INT), VOLUME_ID, f("content", UTF, ""), COLOR,
              f("x", INT, 0), f("y", INT, 0), f("width", INT, 0), f("height", INT, 0))
    TEXT = ("id={note_id}, folder={folder_id}, content={content}, color={color}, "
            "bounds=({x},{y},{width},{height})")


class EditNote(Op):
    OPCODE, NAME = 33, "EditNote"
    LAYOUT = (req("note_id", INT), f("content", UTF, ""))
    TEXT = "id={note_id}, content={content}"


class RepositionNote(Op):
    OPCODE, NAME = 34, "RepositionNote"
    LAYOUT = (req("note_id", INT), f("x", INT, 0), f("y", INT, 0), f("width", INT, 0),
              f("height", INT, 0))
    TEXT = "id={note_id}, bounds=({x},{y},{width},{height})"


# --------------------------------------------------------------------------------------------
# Calendar


class ModifyInviteFlag(Op):
    OPCODE, NAME = 36, "ModifyInviteFlag"
    LAYOUT = (req("item_id", INT), f("comp_num", INT, 0), req("flag", INT), req("add", BOOL))
    TEXT = "id={item_id}, comp={comp_num}, flag={flag}, add={add}"


class ModifyInvitePartStat(Op):
    """`recur_id` is (range, date-time) or None."""

    OPCODE, NAME = 37, "ModifyInvitePartStat"
    LAYOUT = (req("cal_item_id", INT),
              f("recur_id", Optional(Struct(req("range", INT), req("dt", UTF)))),
              f("cn", UTF, ""), f("address", UTF, ""), f("cutype", UTF, ""), f("role", UTF, ""),
              f("part_stat", UTF, ""), f("rsvp", BOOL, False), f("seq_no", INT, 0),
              f("dt_stamp", LONG, 0))
    TEXT = ("calItemId={cal_item_id}",
            If("recur_id is not None and recur_id[1] is not None",
               ", recurIdDt={recur_id[1]}, recurIdRange={recur_id[0]}"),
            ", cn={cn}, address={address}, cutype={cutype}, role={role}, part={part_stat}, "
            "rsvp={rsvp}, seqNo={seq_no}, dtStamp={dt_stamp}")


class CreateInvite(Op):
    OPCODE, NAME = 43, "CreateInvite"
    LAYOUT = (f("cal_item_id", INT, 0), f("part_stat", UTF, "NE", since=(1, 1)),
              req("folder_id", INT), hidden("volume_id_", SHORT, -1, since=(1, 0)),
              hidden("force", BOOL, True), f("data", BYTES, b""), f("local_tz", META),
              f("invite", META), f("preserve_alarms", BOOL, False, since=(1, 22)),
              f("discard_invites", BOOL, False, since=(1, 22)),
              f("add_revision", BOOL, False, since=(1, 23)))
    TEXT = ("calItemId={cal_item_id}, calItemPartStat={part_stat}, folder={folder_id}, "
            "dataLen={len(data)}, localTZ={local_tz:meta}, inv={invite:meta}, "
            "preserveExistingAlarms={preserve_alarms}, "
            "discardExistingInvites={discard_invites}, addRevision={add_revision}")


class ICalReply(Op):
    OPCODE, NAME = 57, "ICalReply"
    LAYOUT = (f("local_tz", META), f("invite", META), f("sender", UTF))
    TEXT = "localTZ={local_tz:meta}, inv={invite:meta}, sender={sender}"


# Mailbox.SetCalendarItemData: an invite, and the message that carried it.
CALENDAR_DATA = Struct(hidden("obsolete", BOOL, True), f("local_tz", META), f("invite", META),
                       hidden("has_message", BOOL, Expr("message is not None"), since=(1, 24),
                              absent=True),
                       f("received", LONG, 0, when="has_message"),
                       f("message", BYTES, None, when="has_message"))


class SetCalendarItem(Op):
    """`default` and each of `exceptions` is (local timezone, invite metadata, received date,
    message bytes or None); `replies` are ReplyInfo metadata (None: Zimbra's null list)."""

    OPCODE, NAME = 44, "SetCalendarItem"
    LAYOUT = (req("folder_id", INT), hidden("volume_id_", SHORT, -1, since=(1, 0)),
              f("cal_item_id", INT, 0), f("part_stat", UTF, "NE", since=(1, 1)),
              f("attachment_indexing", BOOL, False, since=(1, 2)),
              f("flags", INT, 0, since=(1, 11)), f("tags", UTF_ARRAY, since=(1, 33)),
              f("tag_bits", LONG, 0, gates=(((1, 33), None), ((1, 11), LONG))),
              hidden("has_default", BOOL, Expr("default is not None"), since=(1, 17), absent=True),
              f("default", CALENDAR_DATA, when="has_default"),
              f("exceptions", ListOf(CALENDAR_DATA, min_item=9), ()),
              f("replies", ListOf(META, min_item=4, negative_is_none=True), since=(1, 15)),
              f("next_alarm", LONG, 0, since=(1, 21)))
    TEXT = staticmethod(optext.set_calendar_item)


class FixCalendarItemTimeZone(Op):
    OPCODE, NAME = 60, "FixCalendarItemTimeZone"
    LAYOUT = (req("item_id", INT), f("after", LONG, 0), f("country", UTF))
    TEXT = "id={item_id}, after={after}, country={country}"


class FixCalendarItemTZ(Op):
    """`replacements` are (old TZID, new timezone metadata) pairs."""

    OPCODE, NAME = 70, "FixCalendarItemTZ"
    LAYOUT = (req("item_id", INT),
              f("replacements", ListOf(Struct(req("tzid", UTF), req("timezone", META)),
                                       min_item=8), ()))
    TEXT = staticmethod(optext.fix_calendar_item_tz)


class FixCalendarItemEndTime(Op):
    OPCODE, NAME = 67, "FixCalendarItemEndTime"
    LAYOUT = (req("item_id", INT),)
    TEXT = "id={item_id}"


class FixCalendarItemPriority(Op):
    OPCODE, NAME = 78, "FixCalendarItemPriority"
    LAYOUT = (req("item_id", INT),)
    TEXT = "id={item_id}"


class DismissCalendarItemAlarm(Op):
    OPCODE, NAME = 66, "DismissCalendarItemAlarm"
    LAYOUT = (req("item_id", INT), req("dismissed_at", LONG))
    TEXT = "id={item_id}, dismissedAt={dismissed_at}"


class SnoozeCalendarItemAlarm(Op):
    OPCODE, NAME = 83, "SnoozeCalendarItemAlarm"
    LAYOUT = (req("item_id", INT), req("snooze_until", LONG))
    TEXT = "id={item_id}, snoozeUntil={snooze_until}"


# --------------------------------------------------------------------------------------------
# Volumes (server-wide: mailbox 0)


_BITS = (f("mbox_group_bits", SHORT, 8), f("mbox_bits", SHORT, 12), f("file_group_bits", SHORT, 8),
         f("file_bits", SHORT, 12))


class CreateVolume(Op):
    OPCODE, NAME = 38, "CreateVolume"
    LAYOUT = (f("volume_id", SHORT, -1), req("type", SHORT), f("name", UTF), f("root_path", UTF),
              *_BITS, f("compress_blobs", BOOL, False), f("store_type", SHORT, 1),
              f("store_manager_class", UTF))
    TEXT = staticmethod(lambda o, v: javafmt.to_string_helper(
        "CreateVolume", ("id", o.volume_id), ("type", o.type), ("name", o.name),
        ("path", o.root_path), ("mboxGroupBits", o.mbox_group_bits), ("mboxBit", o.mbox_bits),
        ("fileGroupBits", o.file_group_bits), ("fileBits", o.file_bits),
        ("compressBlobs", o.compress_blobs), ("compressionThreshold", 0),
        ("storeType", o.store_type), ("storeManagerClass", o.store_manager_class)))


class ModifyVolume(Op):
    OPCODE, NAME = 39, "ModifyVolume"
    LAYOUT = (req("volume_id", SHORT), req("type", SHORT), f("name", UTF), f("root_path", UTF),
              *_BITS)
    TEXT = staticmethod(lambda o, v: javafmt.to_string_helper(
        "ModifyVolume", ("id", o.volume_id), ("type", o.type), ("name", o.name),
        ("path", o.root_path), ("mboxGroupBits", o.mbox_group_bits), ("mboxBits", o.mbox_bits),
        ("fileGroupBits", o.file_group_bits), ("fileBits", o.file_bits),
        ("compressBlobs", False), ("compressionThrehold", 0)))


class DeleteVolume(Op):
    OPCODE, NAME = 40, "DeleteVolume"
    LAYOUT = (req("volume_id", SHORT),)
    TEXT = "id={volume_id}"


class SetCurrentVolume(Op):
    OPCODE, NAME = 41, "SetCurrentVolume"
    LAYOUT = (req("type", SHORT), req("volume_id", SHORT))
    TEXT = "type={type}, id={volume_id}"


# --------------------------------------------------------------------------------------------
# The registry

ALL_OPS: tuple[type[Op], ...] = tuple(
    c for c in list(globals().values())
    if isinstance(c, type) and issubclass(c, Op) and "LAYOUT" in c.__dict__)

for _cls in ALL_OPS:
    if _cls not in (CreateLink, CreateFileSharedWithMe):
        register(_cls)
register(CreateLink, 85)  # the opcode named after it, which Zimbra never writes
register_alternative(35, CreateFileSharedWithMe)
register_alternative(35, CreateLink)

# The ops the store and the replay engines apply; every other op is decoded and reported.
MAIL_OPS: tuple[type[Op], ...] = (
    CreateMailbox, DeleteMailbox, CreateFolder, RenameFolder, EmptyFolder, CreateTag, RenameTag,
    StoreIncomingBlob, CreateMessage, SetItemTags, AlterItemTag, MoveItem, DeleteItem,
    CreateContact, ModifyContact, IndexItem)


def contact_fields(pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...]
                   ) -> tuple[tuple[str, str], ...]:
    """A contact's fields as Zimbra's ParsedContact holds and its writer writes them.

    The request's fields go into a default HashMap (`CreateContact.parseContact`), whose
    iteration feeds another default HashMap in `ParsedContact.init`, keeping only names that
    are not blank and values that are not empty (control characters stripped from both)."""
    request = javahash.JavaHashMap()
    for k, v in pairs:
        request.put(k, v)
    parsed = javahash.JavaHashMap()
    for k, v in request.items():
        key = javafmt.strip_controls(str(k))
        value = javafmt.strip_controls(v if isinstance(v, str) else None)
        if key and key.strip() and value:
            parsed.put(key, value)
    return tuple((str(k), str(v)) for k, v in parsed.items())


def hashmap_ordered(pairs: list[tuple[int, Any]] | tuple[tuple[int, Any], ...]
                    ) -> tuple[tuple[int, Any], ...]:
    """(key, ...) entries in the order Zimbra's default HashMap of their keys iterates (the
    order CopyItem and SetImapUid write them in)."""
    by_key = {p[0]: p for p in pairs}
    return tuple(by_key[k] for k in javahash.hashmap_order(list(by_key)))
