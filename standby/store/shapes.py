"""The shapes of rows and values the store's statements and the fast engine's model both write,
defined once: the system folders a new mailbox gets (Zimbra's `Mailbox.createDefaultFolders`),
the column limits, folder and saved-search metadata, custom data and color changes to an item's
metadata, a contact's text columns, a delivered message's flag columns; and what one op did to
each volume (`Outcome`) with the message content the three volumes share (`Content`).

Invariant: both engines build these columns only through these functions, so the rows a replay
folds equal the rows the statements write, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from standby.redolog import javafmt, metadata
from standby.redolog.ops import FLAG_ATTACHED, FLAG_UNREAD, TYPE_CONTACT, TYPE_MESSAGE, TYPE_UNKNOWN
from standby.store.mime import MessageFields, message_fields

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
