"""The redo ops the store writes, each with Zimbra's opcode, payload layout and printable form.

Layouts are Zimbra's at serialization version 1.42 (`redolog/op/*.java`); readers honour the
version gates that matter for older records (message size as int32 before 1.42, tag names since
1.33, and so on). Several layouts carry constants that Zimbra writes and ignores (an int16 -1
where a volume id used to be; an int32 -1 "id list follows" marker) and these are kept byte for
byte. `printable()` is the data part of zmredodump's line, in Zimbra's exact wording.

Item types are Zimbra's `MailItem.Type` bytes; flags are Zimbra's bit masks (`FLAG_*`).
"""

from __future__ import annotations

import struct
from typing import Any

from standby.redolog import javafmt
from standby.redolog.codec import (
    I32,
    DecodeError,
    Out,
    Truncated,
    r_bool,
    r_bytes,
    r_i8,
    r_i16,
    r_i32,
    r_i32_array,
    r_i64,
    r_utf,
    r_utf_array,
)
from standby.redolog.record import Op, register

# MailItem.Type
TYPE_UNKNOWN, TYPE_FOLDER, TYPE_SEARCH, TYPE_TAG, TYPE_CONVERSATION = -1, 1, 2, 3, 4
TYPE_MESSAGE, TYPE_CONTACT, TYPE_DOCUMENT = 5, 6, 8
TYPE_NAMES = {
    -1: "unknown", 1: "folder", 2: "searchfolder", 3: "tag", 4: "conversation", 5: "message",
    6: "contact", 7: "invite", 8: "document", 9: "note", 10: "flag", 11: "appointment",
    12: "virtual_conversation", 13: "mountpoint", 14: "wiki", 15: "task", 16: "chat",
    17: "comment", 18: "link", 19: "smartfolder",
}

# Flag bit masks (Flag.FlagInfo: bitmask = 1 << (-id - 1)) and their names.
FLAG_FROM_ME, FLAG_ATTACHED, FLAG_REPLIED, FLAG_FORWARDED = 0x1, 0x2, 0x4, 0x8
FLAG_FLAGGED, FLAG_DRAFT, FLAG_DELETED, FLAG_UNREAD = 0x20, 0x40, 0x80, 0x200
FLAG_UNCHANGED = -0x80000000
FLAG_NAMES = {
    "\\Sent": FLAG_FROM_ME, "\\Attached": FLAG_ATTACHED, "\\Answered": FLAG_REPLIED,
    "\\Forwarded": FLAG_FORWARDED, "\\Flagged": FLAG_FLAGGED, "\\Draft": FLAG_DRAFT,
    "\\Deleted": FLAG_DELETED, "\\Unread": FLAG_UNREAD,
}

BODY_INLINE, BODY_LINK = 1, 2


_QB = struct.Struct(">qB").unpack_from
_QIIII = struct.Struct(">qiiii").unpack_from
_IB = struct.Struct(">iB").unpack_from
_I = struct.Struct(">i").unpack_from


def type_name(t: int) -> str:
    return TYPE_NAMES.get(t, "unknown")


def _s(v: object) -> str:
    """Java's string concatenation of a possibly-null value."""
    return "null" if v is None else str(v)


def _jbool(b: bool) -> str:
    return "true" if b else "false"


def _jlist(items: tuple[int, ...] | None) -> str:
    return "null" if items is None else "[" + ", ".join(str(i) for i in items) + "]"


def _encode_tags(tags: tuple[str, ...] | None) -> str:
    """Zimbra TagUtil.encodeTags: names joined by ',', with '\\' and ',' escaped."""
    if not tags:
        return ""
    return ",".join(t.replace("\\", "\\\\").replace(",", "\\,") for t in tags)


def _w_constraint(out: Out, c: str | None) -> None:
    out.bool(c is not None)
    if c is not None:
        out.utf(c)


def _r_constraint(buf: bytes, pos: int) -> tuple[str | None, int]:
    has, pos = r_bool(buf, pos)
    if has:
        return r_utf(buf, pos)
    return None, pos


def _r_legacy_ids(buf: bytes, pos: int) -> tuple[int, int]:
    """The leading int32 of an id-list op: -1 (list follows), or a legacy single id."""
    return r_i32(buf, pos)


def _r_custom(buf: bytes, pos: int) -> tuple[str | None, str | None, int]:
    key, pos = r_utf(buf, pos)
    if key is None:
        return None, None, pos
    value, pos = r_utf(buf, pos)
    return key, value, pos


def _w_custom(out: Out, key: str | None, value: str | None) -> None:
    out.utf(key)
    if key is not None:
        out.utf(value)


def _custom_str(key: str | None, value: str | None) -> str:
    if key is None:
        return "null"
    return f"{key}: {javafmt.custom_metadata_map(value)}"


def _attrs_block(attrs: tuple[tuple[str, str], ...]) -> str:
    if not attrs:
        return ""
    ordered = javafmt.hashmap_order([k for k, _ in attrs], capacity=len(attrs))
    values = dict(attrs)
    return ", attrs={" + "".join(f"\n    {k}: {values[k]}" for k in ordered) + "\n}"


# --------------------------------------------------------------------------------------------
# Control records


@register
class Checkpoint(Op):
    OPCODE, NAME = 1, "Checkpoint"
    __slots__ = ("txns",)

    def __init__(self, txns: tuple[tuple[int, int], ...] = ()) -> None:
        self.txns = tuple(txns)

    @property
    def is_start_marker(self) -> bool:
        return False

    def encode_data(self, out: Out) -> None:
        out.i32(len(self.txns))
        for t, c in self.txns:
            out.i32(t)
            out.i32(c)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        n, pos = r_i32(buf, pos)
        if n < 0 or n * 8 > len(buf) - pos:
            raise DecodeError(f"checkpoint count {n} is implausible")
        seen: dict[tuple[int, int], None] = {}
        for _ in range(n):
            t, pos = r_i32(buf, pos)
            c, pos = r_i32(buf, pos)
            seen[(t, c)] = None
        return cls(tuple(seen)), pos

    def printable(self) -> str:
        if not self.txns:
            return ""
        return f"{len(self.txns)} active txns: " + ", ".join(f"{t}.{c}" for t, c in self.txns)


class _ControlOp(Op):
    __slots__ = ("txn_opcode",)

    def __init__(self, txn_opcode: int) -> None:
        self.txn_opcode = txn_opcode

    @property
    def is_start_marker(self) -> bool:
        return False

    def encode_data(self, out: Out) -> None:
        out.i32(self.txn_opcode)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        if pos + 4 > len(buf):
            raise Truncated("control record runs past the end")
        return cls(I32.unpack_from(buf, pos)[0]), pos + 4

    def printable(self) -> str:
        return f"txnType={op_name(self.txn_opcode)}"


@register
class CommitTxn(_ControlOp):
    OPCODE, NAME = 3, "CommitTxn"
    __slots__ = ()


@register
class AbortTxn(_ControlOp):
    OPCODE, NAME = 4, "AbortTxn"
    __slots__ = ()


@register
class Rollover(Op):
    OPCODE, NAME = 6, "Rollover"
    __slots__ = ("filename", "seq")

    def __init__(self, seq: int, filename: str | None) -> None:
        self.seq, self.filename = seq, filename

    def encode_data(self, out: Out) -> None:
        out.i64(self.seq)
        out.utf(self.filename)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        seq, pos = r_i64(buf, pos)
        name, pos = r_utf(buf, pos)
        return cls(seq, name), pos

    def printable(self) -> str:
        return f"seq={self.seq}, filename={_s(self.filename)}"


# --------------------------------------------------------------------------------------------
# Mailbox lifecycle


@register
class CreateMailbox(Op):
    OPCODE, NAME = 7, "CreateMailbox"
    __slots__ = ("account_id",)

    def __init__(self, account_id: str | None) -> None:
        self.account_id = account_id

    def encode_data(self, out: Out) -> None:
        out.utf(self.account_id)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        acct, pos = r_utf(buf, pos)
        return cls(acct), pos

    def printable(self) -> str:
        return f"account={self.account_id or ''}"


@register
class DeleteMailbox(Op):
    OPCODE, NAME = 8, "DeleteMailbox"
    __slots__ = ()

    def encode_data(self, out: Out) -> None:
        pass

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        return cls(), pos

    def printable(self) -> str:
        return ""


# --------------------------------------------------------------------------------------------
# Folders and tags


@register
class CreateFolder(Op):
    OPCODE, NAME = 58, "CreateFolder"
    __slots__ = (
        "attrs",
        "color",
        "custom_key",
        "custom_value",
        "date",
        "flags",
        "folder_id",
        "name",
        "parent_id",
        "url",
        "uuid",
        "view",
    )

    def __init__(self, name: str, parent_id: int, attrs: int = 0, view: int = TYPE_UNKNOWN,
                 flags: int = 0, color: int = 0, url: str = "", folder_id: int = -1,
                 uuid: str | None = None, date: int | None = None,
                 custom_key: str | None = None, custom_value: str | None = None) -> None:
        self.name, self.parent_id, self.attrs, self.view = name, parent_id, attrs, view
        self.flags, self.color, self.url, self.folder_id = flags, color, url, folder_id
        self.uuid, self.date = uuid, date
        self.custom_key, self.custom_value = custom_key, custom_value

    def encode_data(self, out: Out) -> None:
        out.utf(self.name or "")
        out.i32(self.parent_id)
        out.i8(self.attrs)
        out.i8(self.view)
        out.i32(self.flags)
        out.i64(self.color)
        out.utf(self.url or "")
        out.i32(self.folder_id)
        out.utf(self.uuid)
        out.bool(self.date is not None)
        if self.date is not None:
            out.i64(self.date)
        _w_custom(out, self.custom_key, self.custom_value)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        name, pos = r_utf(buf, pos)
        parent, pos = r_i32(buf, pos)
        attrs = 0
        if version >= (1, 19):
            attrs, pos = r_i8(buf, pos)
        view, pos = r_i8(buf, pos)
        flags, pos = r_i32(buf, pos)
        if version >= (1, 27):
            color, pos = r_i64(buf, pos)
        else:
            color, pos = r_i8(buf, pos)
        url, pos = r_utf(buf, pos)
        fid, pos = r_i32(buf, pos)
        uuid = None
        if version >= (1, 37):
            uuid, pos = r_utf(buf, pos)
        date = None
        if version >= (1, 39):
            has, pos = r_bool(buf, pos)
            if has:
                if version >= (1, 40):
                    date, pos = r_i64(buf, pos)
                else:
                    secs, pos = r_i32(buf, pos)
                    date = secs * 1000
        ck = cv = None
        if version >= (1, 41):
            ck, cv, pos = _r_custom(buf, pos)
        return cls(name or "", parent, attrs, view, flags, color, url or "", fid, uuid, date,
                   ck, cv), pos

    def printable(self) -> str:
        return (f"name={self.name}, parent={self.parent_id}, attrs={self.attrs}, "
                f"view={type_name(self.view)}, flags={self.flags}, color={self.color}, "
                f"url={self.url}, id={self.folder_id}, uuid={_s(self.uuid)}, "
                f"date={'null' if self.date is None else self.date}, "
                f"custom={_custom_str(self.custom_key, self.custom_value)}")


@register
class RenameFolder(Op):
    """Rename and/or move a folder: `parent_id` is the (new) parent."""

    OPCODE, NAME = 59, "RenameFolder"
    __slots__ = ("folder_id", "name", "parent_id")

    def __init__(self, folder_id: int, parent_id: int, name: str) -> None:
        self.folder_id, self.parent_id, self.name = folder_id, parent_id, name

    def encode_data(self, out: Out) -> None:
        out.i32(self.folder_id)
        out.i32(self.parent_id)
        out.utf(self.name)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        fid, pos = r_i32(buf, pos)
        parent, pos = r_i32(buf, pos)
        name, pos = r_utf(buf, pos)
        return cls(fid, parent, name or ""), pos

    def printable(self) -> str:
        return f"id={self.folder_id}, type=folder, name={self.name},parent={self.parent_id}, date=null"


@register
class EmptyFolder(Op):
    OPCODE, NAME = 25, "EmptyFolder"
    __slots__ = ("folder_id", "subfolders")

    def __init__(self, folder_id: int, subfolders: bool) -> None:
        self.folder_id, self.subfolders = folder_id, subfolders

    def encode_data(self, out: Out) -> None:
        out.i32(self.folder_id)
        out.bool(self.subfolders)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        fid, pos = r_i32(buf, pos)
        sub, pos = r_bool(buf, pos)
        return cls(fid, sub), pos

    def printable(self) -> str:
        return f"id={self.folder_id}, subfolders={_jbool(self.subfolders)}"


@register
class CreateTag(Op):
    OPCODE, NAME = 14, "CreateTag"
    __slots__ = ("color", "name", "tag_id")

    def __init__(self, tag_id: int, name: str, color: int = 0) -> None:
        self.tag_id, self.name, self.color = tag_id, name, color

    def encode_data(self, out: Out) -> None:
        out.i32(self.tag_id)
        out.utf(self.name)
        out.i64(self.color)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        tid, pos = r_i32(buf, pos)
        name, pos = r_utf(buf, pos)
        if version >= (1, 27):
            color, pos = r_i64(buf, pos)
        else:
            color, pos = r_i8(buf, pos)
        return cls(tid, name or "", color), pos

    def printable(self) -> str:
        return f"id={self.tag_id}, name={self.name}, color={self.color}"


@register
class RenameTag(Op):
    OPCODE, NAME = 15, "RenameTag"
    __slots__ = ("name", "tag_id")

    def __init__(self, tag_id: int, name: str) -> None:
        self.tag_id, self.name = tag_id, name

    def encode_data(self, out: Out) -> None:
        out.i32(self.tag_id)
        out.utf(self.name)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        tid, pos = r_i32(buf, pos)
        name, pos = r_utf(buf, pos)
        return cls(tid, name or ""), pos

    def printable(self) -> str:
        return f"id={self.tag_id}, type=tag, name={self.name},parent=8, date=null"


# --------------------------------------------------------------------------------------------
# Messages


@register
class StoreIncomingBlob(Op):
    """A blob delivered to several mailboxes, logged once (header mailbox -1)."""

    OPCODE, NAME = 26, "StoreIncomingBlob"
    __slots__ = ("data", "digest", "mailbox_ids", "msg_size", "path")

    def __init__(self, mailbox_ids: tuple[int, ...] | None, digest: str | None,
                 path: str | None, msg_size: int, data: bytes) -> None:
        self.mailbox_ids = tuple(mailbox_ids) if mailbox_ids else None
        self.digest, self.path, self.msg_size, self.data = digest, path, msg_size, data

    @property
    def blob(self) -> bytes | None:
        return self.data

    def encode_data(self, out: Out) -> None:
        ids = self.mailbox_ids or ()
        out.i32(len(ids))
        for m in ids:
            out.i64(m)
        out.utf(self.digest)
        out.utf(self.path)
        out.i16(-1)
        out.i32(self.msg_size)
        out.i32(len(self.data))
        out.raw(self.data)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        n, pos = r_i32(buf, pos)
        if n > 1_000_000 or n < 0:
            raise DecodeError(f"Deserialized mailbox list too large ({n})")
        ids: tuple[int, ...] | None = None
        if n:
            width = 8 if version >= (1, 26) else 4
            if pos + width * n > len(buf):
                raise Truncated("mailbox id list runs past the end")
            ids = struct.unpack_from(f">{n}{'q' if width == 8 else 'i'}", buf, pos)
            pos += width * n
        digest, pos = r_utf(buf, pos)
        path, pos = r_utf(buf, pos)
        _v, pos = r_i16(buf, pos)
        size, pos = r_i32(buf, pos)
        dlen, pos = r_i32(buf, pos)
        data, pos = r_bytes(buf, pos, dlen)
        return cls(ids, digest, path, size, data), pos

    def printable(self) -> str:
        mbox = "[]" if self.mailbox_ids is None else _jlist(self.mailbox_ids)
        return (f'blobDigest="{_s(self.digest)}", size={self.msg_size}, dataLen={len(self.data)}, '
                f"path={_s(self.path)}, mbox={mbox}")

    def fields(self) -> dict[str, Any]:
        d = super().fields()
        d["dataLen"] = len(self.data)
        return d


@register
class CreateMessage(Op):
    OPCODE, NAME = 27, "CreateMessage"
    __slots__ = (
        "body_type",
        "cal_item_id",
        "conv_first_msg_id",
        "conv_id",
        "custom_key",
        "custom_value",
        "data",
        "digest",
        "flags",
        "folder_id",
        "merged_conv_ids",
        "msg_id",
        "msg_size",
        "no_ical",
        "part_stat",
        "path",
        "rcpt",
        "rcv_date",
        "shared",
        "tags",
    )

    def __init__(self, rcpt: str, rcv_date: int, shared: bool, digest: str, msg_size: int,
                 msg_id: int, folder_id: int, conv_id: int = -1, conv_first_msg_id: int = -1,
                 merged_conv_ids: tuple[int, ...] = (), cal_item_id: int = 0,
                 part_stat: str | None = "NE", flags: int = 0, no_ical: bool = False,
                 tags: tuple[str, ...] | None = None, path: str | None = None,
                 custom_key: str | None = None, custom_value: str | None = None,
                 body_type: int = BODY_INLINE, data: bytes | None = None) -> None:
        self.rcpt, self.rcv_date, self.shared, self.digest = rcpt, rcv_date, shared, digest
        self.msg_size, self.msg_id, self.folder_id = msg_size, msg_id, folder_id
        self.conv_id, self.conv_first_msg_id = conv_id, conv_first_msg_id
        self.merged_conv_ids = tuple(merged_conv_ids)
        self.cal_item_id, self.part_stat, self.flags = cal_item_id, part_stat, flags
        self.no_ical, self.tags, self.path = no_ical, tags, path
        self.custom_key, self.custom_value = custom_key, custom_value
        self.body_type = body_type
        self.data = data if body_type == BODY_INLINE else None

    @property
    def blob(self) -> bytes | None:
        return self.data

    def encode_data(self, out: Out) -> None:
        out.utf(self.rcpt or "")
        out.i64(self.rcv_date)
        out.bool(self.shared)
        out.utf(self.digest or "")
        out.i64(self.msg_size)
        out.i32(self.msg_id)
        out.i32(self.folder_id)
        out.i32(self.conv_id)
        out.i32(self.conv_first_msg_id)
        out.i32_array(self.merged_conv_ids)
        out.i32(self.cal_item_id)
        out.utf(self.part_stat)
        out.i32(self.flags)
        out.bool(self.no_ical)
        out.utf_array(self.tags)
        out.utf(self.path)
        out.i16(-1)
        _w_custom(out, self.custom_key, self.custom_value)
        out.i8(self.body_type)
        if self.body_type == BODY_INLINE:
            data = self.data or b""
            out.i32(len(data))
            out.raw(data)
        else:
            out.i16(-1)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        if version >= (1, 42):
            return cls._decode_current(buf, pos)
        return cls._decode_old(buf, pos, version)

    @classmethod
    def _decode_current(cls, buf: bytes, pos: int) -> tuple[Op, int]:
        # The hot path for 1.42 records: fixed runs unpacked together.
        rcpt, pos = r_utf(buf, pos)
        rcv_date, shared = _QB(buf, pos)
        digest, pos = r_utf(buf, pos + 9)
        size, msg_id, folder_id, conv_id, first = _QIIII(buf, pos)
        merged, pos = r_i32_array(buf, pos + 24)
        cal = _I(buf, pos)[0]
        part_stat, pos = r_utf(buf, pos + 4)
        flags, no_ical = _IB(buf, pos)
        tags, pos = r_utf_array(buf, pos + 5)
        path, pos = r_utf(buf, pos)
        ck = cv = None
        key_len = _I(buf, pos + 2)[0]
        pos += 2
        if key_len == -1:
            pos += 4
        else:
            ck, cv, pos = _r_custom(buf, pos)
        body_type = r_i8(buf, pos)[0]  # a signed byte, as Java's readByte
        pos += 1
        data = None
        if body_type == BODY_INLINE:
            dlen = _I(buf, pos)[0]
            data, pos = r_bytes(buf, pos + 4, dlen)
        else:
            pos += 2
            if pos > len(buf):
                raise Truncated("CreateMessage runs past the end")
        return cls(rcpt or "", rcv_date, shared != 0, digest or "", size, msg_id, folder_id,
                   conv_id, first, merged, cal, part_stat, flags, no_ical != 0, tags, path, ck,
                   cv, body_type, data), pos

    @classmethod
    def _decode_old(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        rcpt, pos = r_utf(buf, pos)
        rcv_date = 0
        if version >= (1, 4):
            rcv_date, pos = r_i64(buf, pos)
        shared, pos = r_bool(buf, pos)
        digest, pos = r_utf(buf, pos)
        size, pos = r_i32(buf, pos)
        msg_id, pos = r_i32(buf, pos)
        folder_id, pos = r_i32(buf, pos)
        conv_id, pos = r_i32(buf, pos)
        first = -1
        if version >= (1, 5):
            first, pos = r_i32(buf, pos)
        merged: tuple[int, ...] = ()
        if version >= (1, 32):
            merged, pos = r_i32_array(buf, pos)
        cal, pos = r_i32(buf, pos)
        part_stat = None
        if version >= (1, 1):
            part_stat, pos = r_utf(buf, pos)
        flags, pos = r_i32(buf, pos)
        no_ical, pos = r_bool(buf, pos)
        tags: tuple[str, ...] | None
        if version >= (1, 33):
            tags, pos = r_utf_array(buf, pos)
        else:
            tag_ids, pos = r_utf(buf, pos)
            tags = tuple(tag_ids.split(",")) if tag_ids else None
        path, pos = r_utf(buf, pos)
        _v, pos = r_i16(buf, pos)
        ck = cv = None
        if version >= (1, 25):
            ck, cv, pos = _r_custom(buf, pos)
        body_type, pos = r_i8(buf, pos)
        data = None
        if body_type == BODY_INLINE:
            dlen, pos = r_i32(buf, pos)
            data, pos = r_bytes(buf, pos, dlen)
        else:
            _v, pos = r_i16(buf, pos)
        return cls(rcpt or "", rcv_date, shared, digest or "", size, msg_id, folder_id, conv_id,
                   first, merged, cal, part_stat, flags, no_ical, tags, path, ck, cv, body_type,
                   data), pos

    def printable(self) -> str:
        s = [f"id={self.msg_id}, rcpt={self.rcpt}, rcvDate={self.rcv_date}, "
             f'shared={_jbool(self.shared)}, blobDigest="{self.digest}", size={self.msg_size}']
        if self.data is not None:
            s.append(f", dataLen={len(self.data)}")
        s.append(f", folder={self.folder_id}, conv={self.conv_id}, "
                 f"convFirstMsgId={self.conv_first_msg_id}")
        if self.merged_conv_ids:
            s.append(f", mergedConvIds={_jlist(self.merged_conv_ids)}")
        if self.cal_item_id != 0:
            s.append(f", calItemId={self.cal_item_id}")
        s.append(f", calItemPartStat={_s(self.part_stat)}, noICal={_jbool(self.no_ical)}")
        if self.custom_key is not None:
            s.append(f", extended={_custom_str(self.custom_key, self.custom_value)}")
        s.append(f", flags={self.flags}, tags=[{','.join(self.tags or ())}]")
        s.append(f", bodyType={self.body_type}")
        s.append(f", linkSourcePath={_s(self.path)}" if self.body_type == BODY_LINK
                 else f", path={_s(self.path)}")
        return "".join(s)

    def fields(self) -> dict[str, Any]:
        d = super().fields()
        d["dataLen"] = len(self.data) if self.data is not None else None
        return d


# --------------------------------------------------------------------------------------------
# Item changes (id-list ops)


def _w_ids(out: Out, ids: tuple[int, ...]) -> None:
    out.i32(len(ids))
    for i in ids:
        out.i32(i)


def _r_ids(buf: bytes, pos: int, first: int) -> tuple[tuple[int, ...], int]:
    if first > 0:
        return (first,), pos
    return r_i32_array(buf, pos)


@register
class SetItemTags(Op):
    OPCODE, NAME = 19, "SetItemTags"
    __slots__ = ("constraint", "flags", "ids", "tags", "type")

    def __init__(self, type: int, flags: int, tags: tuple[str, ...] | None,
                 ids: tuple[int, ...], constraint: str | None = None) -> None:
        self.type, self.flags, self.tags = type, flags, tags
        self.ids, self.constraint = tuple(ids), constraint

    def encode_data(self, out: Out) -> None:
        out.i32(-1)
        out.i8(self.type)
        out.i32(self.flags)
        out.utf_array(self.tags)
        _w_constraint(out, self.constraint)
        _w_ids(out, self.ids)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        first, pos = _r_legacy_ids(buf, pos)
        typ, pos = r_i8(buf, pos)
        flags, pos = r_i32(buf, pos)
        tags: tuple[str, ...] | None
        if version >= (1, 33):
            tags, pos = r_utf_array(buf, pos)
        else:
            _bits, pos = r_i64(buf, pos)
            tags = None
        constraint, pos = _r_constraint(buf, pos)
        ids, pos = _r_ids(buf, pos, first)
        return cls(typ, flags, tags, ids, constraint), pos

    def printable(self) -> str:
        s = (f"ids={_jlist(self.ids)}, type={type_name(self.type)}, flags=[{self.flags}], "
             f"tags=[{_encode_tags(self.tags)}]")
        return s + (f", constraint={self.constraint}" if self.constraint is not None else "")


@register
class AlterItemTag(Op):
    """Set or clear one flag (by its `\\Name`) or one tag (by name) on items."""

    OPCODE, NAME = 18, "AlterItemTag"
    __slots__ = ("constraint", "ids", "tag", "tagged", "type")

    def __init__(self, type: int, tag: str, tagged: bool, ids: tuple[int, ...],
                 constraint: str | None = None) -> None:
        self.type, self.tag, self.tagged = type, tag, tagged
        self.ids, self.constraint = tuple(ids), constraint

    def encode_data(self, out: Out) -> None:
        out.i32(-1)
        out.i8(self.type)
        out.utf(self.tag)
        out.bool(self.tagged)
        _w_constraint(out, self.constraint)
        _w_ids(out, self.ids)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        first, pos = _r_legacy_ids(buf, pos)
        typ, pos = r_i8(buf, pos)
        if version >= (1, 33):
            tag, pos = r_utf(buf, pos)
        else:
            tag_id, pos = r_i32(buf, pos)
            tag = _legacy_flag_name(tag_id)
        tagged, pos = r_bool(buf, pos)
        constraint, pos = _r_constraint(buf, pos)
        ids, pos = _r_ids(buf, pos, first)
        return cls(typ, tag or "", tagged, ids, constraint), pos

    def printable(self) -> str:
        s = (f"ids={_jlist(self.ids)}, type={type_name(self.type)}, tag={self.tag}, "
             f"tagged={_jbool(self.tagged)}")
        return s + (f", constraint={self.constraint}" if self.constraint is not None else "")


def _legacy_flag_name(tag_id: int) -> str:
    if tag_id < 0:
        bit = 1 << (-tag_id - 1)
        for name, mask in FLAG_NAMES.items():
            if mask == bit:
                return name
    return str(tag_id)


@register
class MoveItem(Op):
    OPCODE, NAME = 20, "MoveItem"
    __slots__ = ("constraint", "dest_id", "ids", "type", "uidnext")

    def __init__(self, type: int, dest_id: int, ids: tuple[int, ...],
                 constraint: str | None = None, uidnext: int = -1) -> None:
        self.type, self.dest_id, self.ids = type, dest_id, tuple(ids)
        self.constraint, self.uidnext = constraint, uidnext

    def encode_data(self, out: Out) -> None:
        out.i32(-1)
        out.i8(self.type)
        out.i32(self.dest_id)
        _w_constraint(out, self.constraint)
        _w_ids(out, self.ids)
        out.i32(self.uidnext)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        first, pos = _r_legacy_ids(buf, pos)
        typ, pos = r_i8(buf, pos)
        dest, pos = r_i32(buf, pos)
        constraint, pos = _r_constraint(buf, pos)
        ids, pos = _r_ids(buf, pos, first)
        uidnext = -1
        if version >= (1, 16):
            uidnext, pos = r_i32(buf, pos)
        return cls(typ, dest, ids, constraint, uidnext), pos

    def printable(self) -> str:
        s = f"id={_jlist(self.ids)}, type={type_name(self.type)}, dest={self.dest_id}"
        if self.constraint is not None:
            s += f", constraint={self.constraint}"
        if self.uidnext != -1:
            s += f", uidnext={self.uidnext}"
        return s


@register
class DeleteItem(Op):
    OPCODE, NAME = 21, "DeleteItem"
    __slots__ = ("constraint", "ids", "type")

    def __init__(self, type: int, ids: tuple[int, ...], constraint: str | None = None) -> None:
        self.type, self.ids, self.constraint = type, tuple(ids), constraint

    def encode_data(self, out: Out) -> None:
        out.i32(-1)
        out.i8(self.type)
        _w_constraint(out, self.constraint)
        _w_ids(out, self.ids)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        first, pos = _r_legacy_ids(buf, pos)
        typ, pos = r_i8(buf, pos)
        constraint, pos = _r_constraint(buf, pos)
        ids, pos = _r_ids(buf, pos, first)
        return cls(typ, ids, constraint), pos

    def printable(self) -> str:
        s = f"ids={_jlist(self.ids)}, type={type_name(self.type)}"
        return s + (f", constraint={self.constraint}" if self.constraint is not None else "")


# --------------------------------------------------------------------------------------------
# Contacts and indexing


def _w_attrs(out: Out, attrs: tuple[tuple[str, str], ...]) -> None:
    out.i16(len(attrs))
    for k, v in attrs:
        out.utf(k)
        out.utf(v if v is not None else "")


def _r_attrs(buf: bytes, pos: int) -> tuple[tuple[tuple[str, str], ...], int]:
    n, pos = r_i16(buf, pos)
    out: list[tuple[str, str]] = []
    for _ in range(max(n, 0)):
        k, pos = r_utf(buf, pos)
        v, pos = r_utf(buf, pos)
        out.append((k or "", v or ""))
    return tuple(out), pos


@register
class CreateContact(Op):
    OPCODE, NAME = 30, "CreateContact"
    __slots__ = ("attrs", "contact_id", "data", "folder_id", "tags")

    def __init__(self, contact_id: int, folder_id: int, attrs: tuple[tuple[str, str], ...],
                 tags: tuple[str, ...] | None = None, data: bytes = b"") -> None:
        self.contact_id, self.folder_id = contact_id, folder_id
        self.attrs, self.tags, self.data = tuple(attrs), tags, data

    @property
    def blob(self) -> bytes | None:
        return self.data or None

    def encode_data(self, out: Out) -> None:
        out.i32(self.contact_id)
        out.i32(self.folder_id)
        out.i16(-1)
        out.utf_array(self.tags)
        _w_attrs(out, self.attrs)
        out.i32(len(self.data))
        out.raw(self.data)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        cid, pos = r_i32(buf, pos)
        fid, pos = r_i32(buf, pos)
        _v, pos = r_i16(buf, pos)
        tags: tuple[str, ...] | None
        if version >= (1, 33):
            tags, pos = r_utf_array(buf, pos)
        else:
            tag_ids, pos = r_utf(buf, pos)
            tags = tuple(tag_ids.split(",")) if tag_ids else None
        attrs, pos = _r_attrs(buf, pos)
        data = b""
        if version >= (1, 14):
            n, pos = r_i32(buf, pos)
            if n > 104_857_600:
                raise DecodeError(f"deserialized message size too large ({n} bytes)")
            data, pos = r_bytes(buf, pos, n)
        return cls(cid, fid, attrs, tags, data), pos

    def printable(self) -> str:
        return f'folder={self.folder_id}, tags="{_encode_tags(self.tags)}"' + \
            _attrs_block(self.attrs)

    def fields(self) -> dict[str, Any]:
        d = super().fields()
        d["attrs"] = dict(self.attrs)
        d["dataLen"] = len(self.data)
        return d


@register
class ModifyContact(Op):
    OPCODE, NAME = 31, "ModifyContact"
    __slots__ = ("attrs", "contact_id", "data")

    def __init__(self, contact_id: int, attrs: tuple[tuple[str, str], ...],
                 data: bytes = b"") -> None:
        self.contact_id, self.attrs, self.data = contact_id, tuple(attrs), data

    @property
    def blob(self) -> bytes | None:
        return self.data or None

    def encode_data(self, out: Out) -> None:
        out.i32(self.contact_id)
        _w_attrs(out, self.attrs)
        out.i16(-1)
        out.i32(len(self.data))
        out.raw(self.data)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        cid, pos = r_i32(buf, pos)
        if version < (1, 14):
            _replace, pos = r_bool(buf, pos)
        attrs, pos = _r_attrs(buf, pos)
        data = b""
        if version >= (1, 14):
            _v, pos = r_i16(buf, pos)
            n, pos = r_i32(buf, pos)
            data, pos = r_bytes(buf, pos, n)
        return cls(cid, attrs, data), pos

    def printable(self) -> str:
        return f"id={self.contact_id}" + _attrs_block(self.attrs)

    def fields(self) -> dict[str, Any]:
        d = super().fields()
        d["attrs"] = dict(self.attrs)
        d["dataLen"] = len(self.data)
        return d


@register
class IndexItem(Op):
    OPCODE, NAME = 17, "IndexItem"
    __slots__ = ("delete_first", "item_id", "type")

    def __init__(self, item_id: int, type: int, delete_first: bool = False) -> None:
        self.item_id, self.type, self.delete_first = item_id, type, delete_first

    def encode_data(self, out: Out) -> None:
        out.i32(self.item_id)
        out.i8(self.type)
        out.bool(self.delete_first)

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        iid, pos = r_i32(buf, pos)
        typ, pos = r_i8(buf, pos)
        delete_first = False
        if version >= (1, 8):
            delete_first, pos = r_bool(buf, pos)
        return cls(iid, typ, delete_first), pos

    def printable(self) -> str:
        return f"id={self.item_id}, type={type_name(self.type)}"


# --------------------------------------------------------------------------------------------

# Zimbra's MailboxOperation names, for printing CommitTxn txnType and unknown records.
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
    93: "DeleteConfig", 94: "AddSearchHistoryEntry", 95: "PurgeSearchHistory",
    96: "DeleteSearchHistory", 97: "SetSavedSearchStatus",
}


def op_name(opcode: int) -> str:
    return OP_NAMES.get(opcode, f"Unknown({opcode})")


ALL_OPS = (Checkpoint, CommitTxn, AbortTxn, Rollover, CreateMailbox, DeleteMailbox, CreateFolder,
           RenameFolder, EmptyFolder, CreateTag, RenameTag, StoreIncomingBlob, CreateMessage,
           SetItemTags, AlterItemTag, MoveItem, DeleteItem, CreateContact, ModifyContact,
           IndexItem)
