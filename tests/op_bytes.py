"""Redo records built by hand, byte by byte, as Zimbra's `serializeData` writes them.

The helpers write one Java `RedoLogOutput` call each (`writeBoolean`, `writeByte`, `writeShort`,
`writeInt`, `writeLong`, `writeUTF`, `writeUTFArray`) and `record` the header `RedoableOp.serializeHeader`
writes before the payload, so a test's expected bytes read like the Java they come from. They
never call standby's codec: they are the independent side of the hand-built tests.
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
