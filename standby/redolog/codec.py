"""Big-endian primitives of Zimbra's redo format (Java `DataOutput`, `ByteUtil.writeUTF8`).

`Out` appends to a bytearray; decoding is done with plain functions over a bytes-like buffer and a
position, returning `(value, new_pos)`, because the reader is a hot path and attribute look-ups on
a cursor object cost more than passing an int around.

Strings are not Java modified-UTF: an int32 byte length (-1 = null) followed by UTF-8 bytes, at
most 32 MiB. A UTF array is an int32 count (-1 = null) followed by the strings.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence

I8 = struct.Struct(">b")
U8 = struct.Struct(">B")
I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")
F64 = struct.Struct(">d")

MAX_UTF = 32 * 1024 * 1024


class DecodeError(Exception):
    """A record's bytes do not parse (not a user-facing error: the reader turns it into a report)."""


class Truncated(DecodeError):
    """The buffer ended in the middle of a value."""


class Out:
    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def i8(self, v: int) -> None:
        self.buf += I8.pack(v)

    def u8(self, v: int) -> None:
        self.buf += U8.pack(v)

    def bool(self, v: bool) -> None:
        self.buf.append(1 if v else 0)

    def i16(self, v: int) -> None:
        self.buf += I16.pack(v)

    def i32(self, v: int) -> None:
        self.buf += I32.pack(v)

    def i64(self, v: int) -> None:
        self.buf += I64.pack(v)

    def f64(self, v: float) -> None:
        self.buf += F64.pack(v)

    def utf(self, s: str | None) -> None:
        if s is None:
            self.buf += I32.pack(-1)
            return
        b = s.encode("utf-8")
        if len(b) > MAX_UTF:
            raise ValueError(f"string of {len(b)} bytes exceeds the 32 MiB limit")
        self.buf += I32.pack(len(b))
        self.buf += b

    def utf_array(self, items: tuple[str, ...] | list[str] | None) -> None:
        if items is None:
            self.buf += I32.pack(-1)
            return
        self.buf += I32.pack(len(items))
        for s in items:
            self.utf(s)

    def i32_array(self, items: tuple[int, ...] | list[int]) -> None:
        self.buf += I32.pack(len(items))
        for v in items:
            self.buf += I32.pack(v)

    def raw(self, b: bytes) -> None:
        self.buf += b


def _need(buf: bytes | memoryview, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise Truncated(f"need {n} bytes at offset {pos}, have {len(buf) - pos}")


# The fixed-width readers rely on struct.error for a short buffer; `record.decode_at` turns it
# into Truncated. That keeps a bounds check out of the hot path.
_i8 = I8.unpack_from
_i16 = I16.unpack_from
_i32 = I32.unpack_from
_i64 = I64.unpack_from


def r_i8(buf: bytes, pos: int) -> tuple[int, int]:
    return _i8(buf, pos)[0], pos + 1


def r_bool(buf: bytes, pos: int) -> tuple[bool, int]:
    return buf[pos] != 0, pos + 1


def r_i16(buf: bytes, pos: int) -> tuple[int, int]:
    return _i16(buf, pos)[0], pos + 2


def r_i32(buf: bytes, pos: int) -> tuple[int, int]:
    return _i32(buf, pos)[0], pos + 4


def r_i64(buf: bytes, pos: int) -> tuple[int, int]:
    return _i64(buf, pos)[0], pos + 8


def r_utf(buf: bytes, pos: int) -> tuple[str | None, int]:
    n = _i32(buf, pos)[0]
    pos += 4
    if n < 0:
        if n != -1:
            raise DecodeError(f"negative string length {n} at offset {pos - 4}")
        return None, pos
    if n > MAX_UTF:
        raise DecodeError(f"string length {n} at offset {pos - 4} exceeds 32 MiB")
    end = pos + n
    if end > len(buf):
        raise Truncated(f"string of {n} bytes at offset {pos} runs past the end")
    try:
        return buf[pos:end].decode("utf-8"), end
    except UnicodeDecodeError as e:
        raise DecodeError(f"string at offset {pos} is not UTF-8") from e


def r_utf_array(buf: bytes, pos: int) -> tuple[tuple[str, ...] | None, int]:
    n = _i32(buf, pos)[0]
    pos += 4
    if n < 0:
        if n != -1:
            raise DecodeError(f"negative array length {n}")
        return None, pos
    if n > len(buf):
        raise DecodeError(f"array length {n} at offset {pos - 4} is implausible")
    out = []
    for _ in range(n):
        s, pos = r_utf(buf, pos)
        if s is None:
            raise DecodeError("null element in a string array")
        out.append(s)
    return tuple(out), pos


def r_i32_array(buf: bytes, pos: int) -> tuple[tuple[int, ...], int]:
    n = _i32(buf, pos)[0]
    pos += 4
    if n < 0 or n * 4 > len(buf) - pos:
        raise DecodeError(f"int array length {n} at offset {pos - 4} is implausible")
    vals = struct.unpack_from(f">{n}i", buf, pos)
    return vals, pos + 4 * n


class SpanMap(mmap.mmap):
    """A mapped log whose blobs decode as `BlobSpan`s (their place) instead of copies."""


class BlobSpan:
    """Where a blob lies in the log being read: its length, and its bytes on demand while the
    file is still mapped. Readers that only route blobs (the fast replay engine) use these to
    avoid copying gigabytes of message bodies."""

    __slots__ = ("buf", "length", "offset")

    def __init__(self, buf: SpanMap, offset: int, length: int) -> None:
        self.buf, self.offset, self.length = buf, offset, length

    def __len__(self) -> int:
        return self.length

    def __bytes__(self) -> bytes:
        return bytes(self.buf[self.offset:self.offset + self.length])

    def __eq__(self, other: object) -> bool:
        return bytes(self) == (bytes(other) if isinstance(other, BlobSpan | bytes) else other)

    __hash__ = None  # type: ignore[assignment]


def r_bytes(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    if n < 0:
        raise DecodeError(f"negative data length {n} at offset {pos}")
    end = pos + n
    if end > len(buf):
        raise Truncated(f"need {n} bytes at offset {pos}, have {len(buf) - pos}")
    if buf.__class__ is SpanMap:
        return BlobSpan(buf, pos, n), end  # type: ignore[arg-type,return-value]
    return bytes(buf[pos:end]), end


# Writers into a bytearray and readers of whole runs, which generated layout code calls.

_pack_i32 = I32.pack


def unpack_run(buf: bytes, pos: int, n: int, code: str) -> tuple[int, ...]:
    if n <= 0:
        return ()
    return struct.unpack_from(f">{n}{code}", buf, pos)


def w_utf(buf: bytearray, s: str | None) -> None:
    if s is None:
        buf += b"\xff\xff\xff\xff"
        return
    b = s.encode("utf-8", "replace")  # as Java: a lone surrogate becomes "?"
    if len(b) > MAX_UTF:
        raise ValueError(f"string of {len(b)} bytes exceeds the 32 MiB limit")
    buf += _pack_i32(len(b))
    buf += b


def w_utf_array(buf: bytearray, items: Sequence[str] | None) -> None:
    if items is None:
        buf += b"\xff\xff\xff\xff"
        return
    buf += _pack_i32(len(items))
    for s in items:
        w_utf(buf, s)


def w_i32_array(buf: bytearray, items: Sequence[int]) -> None:
    buf += _pack_i32(len(items))
    buf += struct.pack(f">{len(items)}i", *items)


def w_bytes(buf: bytearray, data: bytes | None) -> None:
    data = data or b""
    buf += _pack_i32(len(data))
    buf += bytes(data)


def r_inline_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    n = I32.unpack_from(buf, pos)[0]
    pos += 4
    if n <= 0:
        return b"", pos
    end = pos + n
    if end > len(buf):
        raise Truncated(f"{n} bytes at offset {pos} run past the end")
    return bytes(buf[pos:end]), end
