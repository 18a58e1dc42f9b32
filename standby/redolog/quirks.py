"""Wires for Zimbra's own encodings that are not a plain field (used by `ops` layouts).

Legacy forms read from old records (tags as a string of ids, a tag as its id), one op's
parallel lists under one count, and a byte Zimbra validates as it reads it.
"""

from __future__ import annotations

import struct
from typing import Any

from standby.redolog.codec import DecodeError
from standby.redolog.layout import BYTE, INT, UTF, ListOf, Prim, Struct, Wire, f

# Flag bit masks by name (Flag.FlagInfo: bitmask = 1 << (-id - 1)).
FLAG_BITS = {
    "\\Sent": 0x1, "\\Attached": 0x2, "\\Answered": 0x4, "\\Forwarded": 0x8,
    "\\Flagged": 0x20, "\\Draft": 0x40, "\\Deleted": 0x80, "\\Unread": 0x200,
}


class TagIdString(Wire):
    """Tags before 1.33: one string of comma-separated tag ids (kept as names: the ids)."""

    def decode(self, g: Any, var: str) -> None:
        UTF.decode(g, var)
        g.line(f"{var} = tuple({var}.split(',')) if {var} else None")

    def encode(self, g: Any, expr: str) -> None:
        UTF.encode(g, f"None if {expr} is None else ','.join({expr})")


class LegacyTagId(Wire):
    """AlterItemTag before 1.33: a tag id (a flag's is negative), read as the flag's name."""

    def decode(self, g: Any, var: str) -> None:
        INT.decode(g, var)
        g.line(f"{var} = {g.ref(_flag_name)}({var})")

    def encode(self, g: Any, expr: str) -> None:
        INT.encode(g, f"{g.ref(legacy_tag_id)}({expr})")


def _flag_name(tag_id: int) -> str:
    if tag_id < 0:
        bit = 1 << min(-tag_id - 1, 62)
        for name, mask in FLAG_BITS.items():
            if mask == bit:
                return name
    return str(tag_id)


def legacy_tag_id(name: str) -> int:
    """The tag id a pre-1.33 record holds for a tag read as `name` (what Zimbra prints)."""
    mask = FLAG_BITS.get(name)
    return -(mask.bit_length()) if mask is not None else int(name)


class IdsAndTypes(ListOf):
    """IndexDeferredItems: one count, the ids, then the types: (id, type) pairs."""

    def __init__(self) -> None:
        super().__init__(Struct(f("id", INT), f("type", BYTE)), min_item=5)

    def decode(self, g: Any, var: str) -> None:
        n = g.tmp()
        INT.decode(g, n)
        g.line(f"if {n} * 5 > len(buf) - pos:")
        with g.block():
            g.line(f"raise {g.ref(DecodeError)}(f'{{{n}}} items run past the end')")
        g.line(f"{var} = tuple(zip({g.ref(_unpack_n)}(buf, pos, max({n}, 0), 'i'),"
               f" {g.ref(_unpack_n)}(buf, pos + 4 * max({n}, 0), max({n}, 0), 'b')))")
        g.line(f"pos += 5 * max({n}, 0)")

    def encode(self, g: Any, expr: str) -> None:
        tmp = g.tmp()
        g.line(f"{tmp} = {expr} or ()")
        g.line(f"buf += {g.ref(_pack_ids_types)}({tmp})")


def _unpack_n(buf: bytes, pos: int, n: int, code: str) -> tuple[int, ...]:
    return struct.unpack_from(f">{n}{code}", buf, pos)


def _pack_ids_types(items: tuple[tuple[int, int], ...]) -> bytes:
    return struct.pack(f">i{len(items)}i{len(items)}b", len(items),
                       *(i for i, _ in items), *(t for _, t in items))


class RetentionType(Prim):
    """SetRetentionPolicy's item type: a folder or a tag, else Zimbra refuses the record."""

    def __init__(self) -> None:
        super().__init__("b", "BYTE")

    def decode(self, g: Any, var: str) -> None:
        super().decode(g, var)
        g.line(f"if {var} not in (1, 3):")
        with g.block():
            g.line(f"raise {g.ref(DecodeError)}(f'Unexpected item type: {{{var}}}')")


RETENTION_TYPE = RetentionType()
RETENTION_TYPE.fixed = None  # its check needs its own statement, not a merged struct call
