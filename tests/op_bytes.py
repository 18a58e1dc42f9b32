"""Redo records built by hand, byte by byte, as Zimbra's `serializeData` writes them.

The helpers write one Java `RedoLogOutput` call each (`writeBoolean`, `writeByte`, `writeShort`,
`writeInt`, `writeLong`, `writeUTF`, `writeUTFArray`) and `record` the header
`RedoableOp.serializeHeader` writes before the payload, so a test's expected bytes read like the
Java they come from. Below them, one payload per op family at a version `v`, written gate by
gate as that op's `deserializeData` reads it (`getVersion().atLeast(...)`), with the text its
`getPrintableData` prints over what the reader leaves at `v`. Nothing here calls standby's
codec: this is the independent side of the hand-built tests (test_ops_hand_bytes).
"""

from __future__ import annotations

import struct


def z(b: bool) -> bytes:
    return b"\x01" if b else b"\x00"


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def utf(s: str | None) -> bytes:
    """ByteUtil.writeUTF8: int32 byte length (-1 for null), then UTF-8."""
    if s is None:
        return i32(-1)
    b = s.encode()
    return i32(len(b)) + b


def utfs(items: list[str] | None) -> bytes:
    """writeUTFArray: int32 count (-1 for null), then each string."""
    return i32(-1) if items is None else i32(len(items)) + b"".join(utf(s) for s in items)


def record(opcode: int, payload: bytes, version: tuple[int, int] = (1, 42),
           mailbox: int = 5) -> bytes:
    """Marker, version, opcode, timestamp, change id 9, constraint 0, txn 1700000000.4, the
    mailbox id (an int before 1.26, a long since), then the payload."""
    head = b"ZMREDO" + i16(version[0]) + i16(version[1]) + i32(opcode) + i64(1_700_000_000_000)
    head += i32(9) + i32(0) + i32(1_700_000_000) + i32(4)
    head += i64(mailbox) if version >= (1, 26) else i32(mailbox)
    return head + payload


META = "d1:ai1e1:b2:xy1:vi10ee"  # {a: 1, b: "xy"} as Metadata.toString() writes it
VCARD = b"BEGIN:VCARD\r\nEND:VCARD\r\n"
MSG = b"Subject: x\r\n\r\nbody"


# --------------------------------------------------------------------------------------------
# CreateMessage's payload (and SaveDocument's fields before it) at version v: one message,
# written as serializeData writes it (the int size before 1.42 as that era's reader reads it)

MESSAGE_VERSIONS = [(1, 0), (1, 1), (1, 3), (1, 4), (1, 5), (1, 24), (1, 25), (1, 28), (1, 29),
                    (1, 30), (1, 31), (1, 32), (1, 33), (1, 36), (1, 37), (1, 41), (1, 42)]


def message_bytes(v: tuple[int, int]) -> bytes:
    b = utf("bob@x")
    if v >= (1, 4):
        b += i64(5)  # received date; before 1.4 the reader takes the op's timestamp
    b += z(False) + utf("dg")
    b += i64(2) if v >= (1, 42) else i32(2)  # msgSize
    b += i32(290) + i32(2) + i32(300)  # msgId, folderId, convId
    if v >= (1, 5):
        b += i32(289)  # convFirstMsgId
    if v >= (1, 32):
        b += i32(1) + i32(7)  # merged conversation ids
    b += i32(0)  # calendar item id
    if v >= (1, 1):
        b += utf("AC")  # calendar item part-stat
    b += i32(0x200) + z(False)  # flags, noICal
    b += utfs(["t"]) if v >= (1, 33) else utf("3")  # tag names; a tag-id string before
    b += utf("/p") + i16(-1)
    if v >= (1, 25):
        b += utf("k") + utf(META)  # extended data (CustomMetadata)
    return b + i8(1) + i32(2) + b"hi"  # inline body: its length, then the blob


def message_text(v: tuple[int, int]) -> str:
    return (f"id=290, rcpt=bob@x, rcvDate={5 if v >= (1, 4) else 1_700_000_000_000}, "
            'shared=false, blobDigest="dg", size=2, dataLen=2, folder=2, conv=300, '
            f"convFirstMsgId={289 if v >= (1, 5) else 0}"
            + (", mergedConvIds=[7]" if v >= (1, 32) else "")
            + f", calItemPartStat={'AC' if v >= (1, 1) else 'NE'}, noICal=false"
            + (", extended=k: {a=1, b=xy}" if v >= (1, 25) else "")
            # before 1.33 the record holds tag ids (mTagIds); Zimbra prints mTags, null then
            + f", flags=512, tags=[{'t' if v >= (1, 33) else ''}], bodyType=1, path=/p")


def message_fields(v: tuple[int, int]) -> dict[str, object]:
    return {"rcv_date": 5 if v >= (1, 4) else 1_700_000_000_000,
            "conv_first_msg_id": 289 if v >= (1, 5) else 0,
            "merged_conv_ids": (7,) if v >= (1, 32) else (),
            "part_stat": "AC" if v >= (1, 1) else "NE",
            "tags": ("t",) if v >= (1, 33) else ("3",),
            "custom_key": "k" if v >= (1, 25) else None, "msg_size": 2, "data": b"hi"}


def document_bytes(v: tuple[int, int]) -> bytes:
    """SaveDocument's own fields, then the message."""
    b = utf("f.pdf") + utf("application/pdf") + utf("Ann") + i8(8)
    if v >= (1, 29):
        b += utf("about")
    if v >= (1, 31):
        b += z(False)  # description enabled; true when not written
    if v >= (1, 37):
        b += utf("u9")
    return b + message_bytes(v)


def document_fields(v: tuple[int, int]) -> dict[str, object]:
    return {"filename": "f.pdf", "mime_type": "application/pdf", "item_type": 8,
            "description": "about" if v >= (1, 29) else None, "desc_enabled": v < (1, 31),
            "uuid": "u9" if v >= (1, 37) else None, **message_fields(v)}


def document_text(v: tuple[int, int]) -> str:
    return f"uuid={'u9' if v >= (1, 37) else 'null'}, " + message_text(v)


# --------------------------------------------------------------------------------------------
# Folders, searches, mountpoints and items at version v

def folder_bytes(v: tuple[int, int]) -> bytes:
    b = utf("F") + i32(1)
    if v >= (1, 19):
        b += i8(1)  # attrs
    b += i8(5) + i32(0)  # view, flags
    b += i64(2) if v >= (1, 27) else i8(2)  # color: a byte before 1.27
    b += utf("") + i32(257)  # url, folder id
    if v >= (1, 37):
        b += utf("u-1")
    if v >= (1, 39):
        b += z(True) + (i64(1_700_000_000_123) if v >= (1, 40) else i32(1_700_000_000))
    if v >= (1, 41):
        b += utf("zimbra") + utf(META)
    return b


def folder_text(v: tuple[int, int]) -> str:
    date = "null" if v < (1, 39) else 1_700_000_000_123 if v >= (1, 40) else 1_700_000_000_000
    return (f"name=F, parent=1, attrs={1 if v >= (1, 19) else 0}, view=message, flags=0, "
            f"color=2, url=, id=257, uuid={'u-1' if v >= (1, 37) else 'null'}, date={date}, "
            f"custom={'zimbra: {a=1, b=xy}' if v >= (1, 41) else 'null'}")


def folder_path_bytes(v: tuple[int, int]) -> bytes:
    b = utf("/a/b") + i8(0) + i8(5) + i32(0)
    b += i64(3) if v >= (1, 27) else i8(3)
    b += utf("")
    if v >= (1, 41):
        b += z(True) + i64(99) + utf("k") + utf(META)
    b += i32(2)
    for fid, uuid in ((300, "u1"), (301, "u2")):
        b += i32(fid) + (utf(uuid) if v >= (1, 37) else b"")
    return b


def folder_path_text(v: tuple[int, int]) -> str:
    new = v >= (1, 41)
    u1, u2 = ("u1", "u2") if v >= (1, 37) else ("null", "null")
    return (f"name=/a/b, attrs=0, view=message, flags=0, color=3, url=, "
            f"date={99 if new else 'null'}, custom={'k: {a=1, b=xy}' if new else 'null'}, "
            f"folderIdsAndUuids=[300 ({u1}), 301 ({u2})]")


def search_bytes(v: tuple[int, int]) -> bytes:
    b = i32(262) + (utf("u") if v >= (1, 37) else b"")
    b += utf("S") + utf("in:inbox") + utf("message") + utf("dateDesc") + i32(1)
    if v >= (1, 28):
        b += i32(4)  # flags; 0 when not written
    return b + (i64(2) if v >= (1, 27) else i8(2))


def search_text(v: tuple[int, int]) -> str:
    return (f"id=262, uuid={'u' if v >= (1, 37) else 'null'}, name=S, query=in:inbox, "
            f"types=message, sort=dateDesc, flags={4 if v >= (1, 28) else 0}, color=2")


def mountpoint_bytes(v: tuple[int, int]) -> bytes:
    b = i32(414) + (utf("u3") if v >= (1, 37) else b"") + utf("M") + utf("acct") + i32(11)
    if v >= (1, 38):
        b += utf("ru3")
    b += i32(1) + i8(5) + i32(0) + (i64(4) if v >= (1, 27) else i8(4))
    return b + (z(True) if v >= (1, 33) else b"")


def mountpoint_text(v: tuple[int, int]) -> str:
    return (f"id=414, uuid={'u3' if v >= (1, 37) else 'null'}, name=M, folder=1, owner=acct, "
            f"remoteId=11, remoteUuid={'ru3' if v >= (1, 38) else 'null'}, view=message, "
            f"flags=0, color=4, reminder={'true' if v >= (1, 33) else 'false'}")


def copy_bytes(v: tuple[int, int], from_dumpster: bool) -> bytes:
    b = i32(-1) + i32(-1) + i8(5) + i32(2) + i16(-1) + i32(2)
    for src, dest, uuid in ((2, 403, "u7"), (17, 404, "u8")):
        b += i32(src) + i32(dest) + (utf(uuid) if v >= (1, 37) else b"")
    return b + (z(from_dumpster) if v >= (1, 30) else b"")


def copy_text(v: tuple[int, int]) -> str:
    u7, u8 = ("u7", "u8") if v >= (1, 37) else ("null", "null")
    return f"type=message, destFolder=2, [srcId, destId, destUuid]=[17,404,{u8}][2,403,{u7}]"


def imap_copy_bytes(v: tuple[int, int]) -> bytes:
    b = i8(5) + i32(2) + i16(-1) + i32(2)
    for src, dest, uuid in ((2, 403, "u7"), (17, 404, "u8")):
        b += i32(src) + i32(dest) + i32(-1) + (utf(uuid) if v >= (1, 37) else b"")
    return b


def item_path_bytes(v: tuple[int, int]) -> bytes:
    return (i32(300) + utf("/a/n") + i32(1) + i32(2) + (utf("u2") if v >= (1, 37) else b"")
            + i8(5))


def comment_bytes(v: tuple[int, int]) -> bytes:
    return (i32(600) + (utf("u") if v >= (1, 37) else b"") + i32(300) + utf("acct")
            + utf("nice"))


def link_bytes(v: tuple[int, int]) -> bytes:
    return (i32(412) + (utf("u") if v >= (1, 37) else b"") + utf("Shared") + utf("acct")
            + i32(9) + i32(1))


def uuid(v: tuple[int, int], u: str) -> str:
    return u if v >= (1, 37) else "null"


# --------------------------------------------------------------------------------------------
# Mailboxes, access and calendar items at version v

PRE_1_0 = (0, 9)
TZ = "d1:ai1ee"  # a timezone's Metadata; printed re-encoded (Util.encodeAsMetadata)
TZ_TEXT = "d1:ai1e1:vi10ee"


def invite_bytes(v: tuple[int, int]) -> bytes:
    b = i32(500) + (utf("AC") if v >= (1, 1) else b"") + i32(10)
    b += (i16(-1) if v >= (1, 0) else b"") + z(True) + i32(2) + b"hi" + utf(TZ) + utf(META)
    if v >= (1, 22):
        b += z(True) + z(False)  # preserve alarms, discard invites
    return b + (z(True) if v >= (1, 23) else b"")  # add revision


def invite_text(v: tuple[int, int]) -> str:
    return (f"calItemId=500, calItemPartStat={'AC' if v >= (1, 1) else 'NE'}, folder=10, "
            f"dataLen=2, localTZ={TZ_TEXT}, inv={META}, "
            f"preserveExistingAlarms={'true' if v >= (1, 22) else 'false'}, "
            f"discardExistingInvites=false, addRevision={'true' if v >= (1, 23) else 'false'}")


def calendar_data_bytes(v: tuple[int, int], message: bytes | None) -> bytes:
    """Mailbox.SetCalendarItemData: an obsolete true, the timezone, the invite, then (always
    before 1.24, flagged since) the message's received date and bytes."""
    b = z(True) + utf(TZ) + utf(META)
    if v >= (1, 24):
        b += z(message is not None)
    return b + (i64(7) + i32(len(message)) + message if message is not None else b"")


def set_calendar_item_bytes(v: tuple[int, int]) -> bytes:
    b = i32(10) + (i16(-1) if v >= (1, 0) else b"") + i32(500)
    if v >= (1, 1):
        b += utf("AC")
    if v >= (1, 2):
        b += z(True)  # attachment indexing
    if v >= (1, 11):
        b += i32(0x20) + (utfs(["t"]) if v >= (1, 33) else i64(6))  # flags; tags or a bitmask
    if v >= (1, 17):
        b += z(True)  # has a default invite (always before 1.17)
    b += calendar_data_bytes(v, b"hi")
    b += i32(1) + calendar_data_bytes(v, b"ex" if v < (1, 24) else None)  # one exception
    if v >= (1, 15):
        b += i32(1) + utf("d1:ri2ee")  # replies
    return b + (i64(99) if v >= (1, 21) else b"")  # next alarm


def set_calendar_item_text(v: tuple[int, int]) -> str:
    head = f"calItemId=500, calItemPartStat={'AC' if v >= (1, 1) else 'NE'}, folder=10"
    if v >= (1, 11):
        head += f", flags=32, tags={'t' if v >= (1, 33) else ''}"
    exception_body = "true" if v < (1, 24) else "false"
    return (head + f"\nDefault=SetCalendarItemData{{inv={META}, hasBody=true}}\n"
            f"Exception0=SetCalendarItemData{{inv={META}, hasBody={exception_body}}}\n"
            + ("Reply0=d1:ri2e1:vi10ee\n" if v >= (1, 15) else "")
            + f"nextAlarm={99 if v >= (1, 21) else 0}\n")


def grant_bytes(v: tuple[int, int]) -> bytes:
    b = i32(2) + utf("g@x") + i8(1) + i16(0x1B) + z(True)
    b += utf("pw") if v >= (1, 2) else b""
    return b + (i64(1_800_000_000_000) if v >= (1, 36) else b"")


def grant_text(v: tuple[int, int]) -> str:
    return (f"id=2, grantee=g@x, type=1, rights=rwdx, args={'pw' if v >= (1, 2) else 'null'}, "
            f"expiry={1_800_000_000_000 if v >= (1, 36) else 0}")


def reindex_bytes(v: tuple[int, int], item_ids: list[int] | None) -> bytes:
    b = i32(4) + z(True) + i32(2) + i8(6) + i8(5)  # completion id; types (an EnumSet)
    if v >= (1, 10):
        b += z(False) if item_ids is None else z(True) + i32(len(item_ids)) + b"".join(
            i32(i) for i in item_ids)
        b += z(True) if v >= (1, 20) else b""  # skip delete
    return b
