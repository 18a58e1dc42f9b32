"""What CopyItem and SaveDraft do to `mail_item` rows, as pure functions of the rows.

Both engines call these on rows in `MAIL_ITEM_COLUMNS` order (the statement engine on rows it
selected, the folding engine on the rows of its model), so a copy or a rewritten draft is built
in one place.

CopyItem (`Mailbox.copy` -> `MailItem.copy` -> `DbMailItem.copy`): all or nothing, as Zimbra
copies inside one transaction: the destination must be a folder, every source a message or a
contact of the op's type (UNKNOWN: any), and no copy id taken (a copy already made is Zimbra's
ALREADY_EXISTS: nothing more is done). Each copy takes the source's row with the new id, uuid
and folder; `imap_id` is the copy's id, `parent_id` none (no conversations here), `recipients`
none (Zimbra's copy statement does not carry that column), `prev_folders` gains
"<change>:<source folder>", and the change number and time are the op's. A message that cannot
change (not a draft) copied outside Junk shares the source's index entry: the source gets the
hidden \\Copied flag (a system flag: its change number stays) and the copy keeps it and the
source's `index_id`; any other copy is indexed on its own. Tag membership is copied too.

SaveDraft (`Mailbox.saveDraft` -> `MailItem.setContent`, `Message.reanalyze`): only a message
with the \\Draft flag; it takes the new body's size, digest, subject, sender, recipients and
\\Attached flag, its date becomes the op's time, `imap_id` its own id (IMAP tracking is off),
and a new content change number (so a new blob file). The op's imap id is only drawn from the
item id counter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from standby.redolog.ops import (
    FLAG_ATTACHED,
    FLAG_DRAFT,
    TYPE_CONTACT,
    TYPE_FOLDER,
    TYPE_MESSAGE,
    TYPE_UNKNOWN,
    CopyItem,
)
from standby.store.schema import MAIL_ITEM_COLUMNS

C = {name: i for i, name in enumerate(MAIL_ITEM_COLUMNS)}
FLAG_COPIED = 0x10  # Flag.BITMASK_COPIED (hidden)
JUNK = 4
PREV_FOLDERS_MAX = 6  # zimbraPrevFoldersToTrackMax's default
COPYABLE = frozenset({TYPE_MESSAGE, TYPE_CONTACT})


def prev_folders(prev: str | None, change: int, folder_id: int) -> str:
    """`DbMailItem.findPrevFolders`: "<change>:<folder>" appended, the oldest dropped past the
    limit."""
    entry = f"{change}:{folder_id}"
    if not prev:
        return entry
    parts = prev.split(";")
    if len(parts) < PREV_FOLDERS_MAX:
        return f"{prev};{entry}"
    return ";".join(parts[1 - PREV_FOLDERS_MAX:] + [entry])


def shares_index(src: Sequence[Any], dest_folder: int) -> bool:
    """Whether a copy shares the source's index entry (immutable, indexed, not into Junk)."""
    return (src[C["type"]] == TYPE_MESSAGE and not src[C["flags"]] & FLAG_DRAFT
            and src[C["index_id"]] is not None and dest_folder != JUNK)


def copy_refusal(op: CopyItem, type_of: Callable[[int], int | None]) -> tuple[str, bool]:
    """Why this copy does nothing ("" if it copies), and whether Zimbra's redo() fails on it
    (a copy id taken is ALREADY_EXISTS, which it logs and lets pass). `type_of` gives an
    item's type, None for an id with no item; the checks go in Zimbra's order."""
    if type_of(op.dest_folder_id) != TYPE_FOLDER:
        return f"no folder {op.dest_folder_id}", True
    for src_id, _copy, _uuid in op.entries:
        if type_of(src_id) is None or op.type not in (TYPE_UNKNOWN, type_of(src_id)):
            return f"no item {src_id} of type {op.type}", True
    for src_id, copy_id, _uuid in op.entries:
        if type_of(src_id) not in COPYABLE:
            return f"item {src_id} cannot be copied", True
        if type_of(copy_id) is not None:
            return f"item {copy_id} already exists", False
    return "", False


def row_types(rows: Mapping[int, Sequence[Any] | None]) -> Callable[[int], int | None]:
    """`type_of` over rows by id (None: no row)."""
    def type_of(item_id: int) -> int | None:
        r = rows.get(item_id)
        return None if r is None else int(r[C["type"]])
    return type_of


def copy_row(src: Sequence[Any], copy_id: int, uuid: str | None, dest_folder: int,
             change: int, tstamp: int) -> list[Any]:
    """The copy's row (the source's \\Copied flag, if it shares the index, already set)."""
    share = shares_index(src, dest_folder)
    r = list(src)
    r[C["id"]], r[C["parent_id"]], r[C["folder_id"]] = copy_id, None, dest_folder
    r[C["prev_folders"]] = prev_folders(src[C["prev_folders"]], change, src[C["folder_id"]])
    r[C["index_id"]] = src[C["index_id"]] if share else copy_id
    r[C["imap_id"]] = copy_id
    r[C["flags"]] = src[C["flags"]] | FLAG_COPIED if share else src[C["flags"]] & ~FLAG_COPIED
    r[C["tags"]], r[C["recipients"]], r[C["uuid"]] = 0, None, uuid
    r[C["mod_metadata"]], r[C["change_date"]], r[C["mod_content"]] = change, tstamp // 1000, change
    return r


def source_flags(src: Sequence[Any], dest_folder: int) -> int:
    """The source's flags after it was copied."""
    flags: int = src[C["flags"]]
    return flags | FLAG_COPIED if shares_index(src, dest_folder) else flags


def is_draft(row: Sequence[Any] | None) -> bool:
    return row is not None and row[C["type"]] == TYPE_MESSAGE and bool(
        row[C["flags"]] & FLAG_DRAFT)


def draft_row(row: Sequence[Any], *, size: int, digest: str, change: int, tstamp: int,
              has_attachment: bool | None) -> list[Any]:
    """A draft rewritten by SaveDraft; `has_attachment` None leaves \\Attached for the caller
    (the body is parsed later). Subject, sender and recipients are the caller's to fill."""
    r = list(row)
    r[C["size"]], r[C["blob_digest"]], r[C["locator"]] = size, digest or None, "1"
    r[C["date"]], r[C["imap_id"]] = tstamp // 1000, r[C["id"]]
    if has_attachment is not None:
        r[C["flags"]] = (r[C["flags"]] & ~FLAG_ATTACHED) | (FLAG_ATTACHED if has_attachment
                                                          else 0)
    r[C["mod_metadata"]], r[C["change_date"]], r[C["mod_content"]] = change, tstamp // 1000, change
    return r
