"""One redo record: the 46-byte header (Zimbra `RedoableOp.serializeHeader`) plus the op payload.

| size | field                                                           |
| 6    | marker `ZMREDO`                                                 |
| 2+2  | op serialization version (major, minor)                         |
| 4    | opcode                                                          |
| 8    | timestamp, epoch ms (op start; for Commit/Abort, commit time)   |
| 4    | changeId (mailbox change number, -1 if none)                    |
| 4    | changeConstraint                                                |
| 4+4  | txnId (time, counter)                                           |
| 8    | mailboxId (int32 before version 1.26); -1 = all, 0 = unknown    |
| var  | op data, then any raw blob bytes                                |

There is no length, checksum or trailer: a reader knows where a record ends only by decoding it.

`Record` and the op values are plain slotted classes rather than frozen dataclasses because the
reader builds hundreds of thousands of them a second; treat them as immutable.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from standby.redolog.codec import DecodeError, Out, Truncated

MARKER = b"ZMREDO"
VERSION = (1, 42)
HEAD = struct.Struct(">6shhiqiiiiq")
HEAD_OLD = struct.Struct(">6shhiqiiiii")  # versions before 1.26: int32 mailbox id
HEAD_SIZE = HEAD.size
assert HEAD_SIZE == 46

MAILBOX_ALL = -1
MAILBOX_UNKNOWN = 0


class Op:
    """Base of the op payload classes. Subclasses set OPCODE and NAME and implement the codec."""

    OPCODE: ClassVar[int] = 0
    NAME: ClassVar[str] = ""
    __slots__ = ()

    # The codec contract: every registered op class defines both (the round-trip tests cover
    # each one). The base class itself is never encoded or registered.
    def encode_data(self, out: Out) -> None:
        raise TypeError(f"{type(self).__name__} does not define its payload layout")

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        raise TypeError(f"{cls.__name__} does not define its payload layout")

    @property
    def is_start_marker(self) -> bool:
        return self.OPCODE not in (1, 3, 4)

    @property
    def blob(self) -> bytes | None:
        """Raw blob bytes carried after the op data, if any."""
        return None

    def printable(self) -> str:
        """The data part of zmredodump's line for this op."""
        return ""

    def fields(self) -> dict[str, Any]:
        """The op's own fields for JSON output (blob bytes excluded)."""
        return {s: getattr(self, s) for s in op_fields(type(self)) if s != "data"}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in op_fields(type(self)))

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}={getattr(self, s)!r}" for s in op_fields(type(self)))
        return f"{type(self).__name__}({inner})"

    __hash__ = None  # type: ignore[assignment]


def op_fields(cls: type) -> tuple[str, ...]:
    """The names of an op class's payload fields, in wire order (its slots, base first).

    Public: the fast replay engine builds ops from columnar values in this order."""
    cached = cls.__dict__.get("_slot_names")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        names.extend(klass.__dict__.get("__slots__", ()))
    out = tuple(names)
    setattr(cls, "_slot_names", out)  # noqa: B010 - a class attribute mypy cannot see
    return out


REGISTRY: dict[int, type[Op]] = {}


def register(cls: type[Op]) -> type[Op]:
    REGISTRY[cls.OPCODE] = cls
    return cls


class Record:
    """A decoded record: header fields, the op, and where it was found (offset, length)."""

    __slots__ = (
        "change_constraint",
        "change_id",
        "length",
        "mailbox_id",
        "offset",
        "op",
        "tstamp",
        "txn_counter",
        "txn_time",
        "version",
    )

    def __init__(self, op: Op, tstamp: int, txn_time: int, txn_counter: int, mailbox_id: int,
                 change_id: int = -1, change_constraint: int = 0,
                 version: tuple[int, int] = VERSION, offset: int = -1, length: int = 0) -> None:
        self.op = op
        self.tstamp = tstamp
        self.txn_time = txn_time
        self.txn_counter = txn_counter
        self.mailbox_id = mailbox_id
        self.change_id = change_id
        self.change_constraint = change_constraint
        self.version = version
        self.offset = offset
        self.length = length

    @property
    def opcode(self) -> int:
        return self.op.OPCODE

    @property
    def txn(self) -> tuple[int, int]:
        return (self.txn_time, self.txn_counter)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.op == other.op and self.tstamp == other.tstamp
                and self.txn_time == other.txn_time and self.txn_counter == other.txn_counter
                and self.mailbox_id == other.mailbox_id and self.change_id == other.change_id
                and self.change_constraint == other.change_constraint
                and self.version == other.version)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Record({self.op!r}, tstamp={self.tstamp}, txn={self.txn_time}.{self.txn_counter}"
                f", mailbox={self.mailbox_id}, change={self.change_id}, at={self.offset})")

    def encode(self) -> bytes:
        out = Out()
        out.raw(HEAD.pack(MARKER, self.version[0], self.version[1], self.op.OPCODE, self.tstamp,
                          self.change_id, self.change_constraint, self.txn_time,
                          self.txn_counter, self.mailbox_id))
        self.op.encode_data(out)
        return bytes(out.buf)


class UnknownOpcode(DecodeError):
    def __init__(self, opcode: int) -> None:
        super().__init__(f"unknown opcode {opcode}")
        self.opcode = opcode


class NewerVersion(DecodeError):
    def __init__(self, version: tuple[int, int]) -> None:
        super().__init__(f"record version {version[0]}.{version[1]} is newer than "
                         f"{VERSION[0]}.{VERSION[1]}")
        self.version = version


_unpack_head = HEAD.unpack_from
_unpack_head_old = HEAD_OLD.unpack_from


def decode_at(buf: bytes, pos: int) -> tuple[Record, int]:
    """Decode the record starting at `pos`; return it and the offset just past it.

    Raises Truncated if the buffer ends inside the record, UnknownOpcode, NewerVersion, or
    DecodeError for anything else that does not parse.
    """
    try:
        (marker, vmaj, vmin, opcode, tstamp, change_id, constraint, ttime, tcount,
         mbox) = _unpack_head(buf, pos)
    except struct.error as e:
        raise Truncated(f"record header at offset {pos} runs past the end") from e
    if marker != MARKER:
        raise DecodeError(f"no ZMREDO marker at offset {pos}")
    if vmaj == 1 and vmin == 42:
        version = VERSION
        end = pos + 46
    else:
        version = (vmaj, vmin)
        if vmaj < 0 or vmin < 0:
            raise DecodeError(f"Negative version number: major={vmaj}, minor={vmin}")
        if version > VERSION:
            raise NewerVersion(version)
        end = pos + 46
        if version < (1, 26):
            mbox = _unpack_head_old(buf, pos)[9]
            end = pos + HEAD_OLD.size
    cls = REGISTRY.get(opcode)
    if cls is None:
        raise UnknownOpcode(opcode)
    try:
        op, end = cls.decode_data(buf, end, version)
    except (struct.error, IndexError) as e:
        raise Truncated(f"{cls.NAME} at offset {pos} runs past the end") from e
    return Record(op, tstamp, ttime, tcount, mbox, change_id, constraint, version, pos,
                  end - pos), end

