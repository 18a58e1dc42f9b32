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
reader builds hundreds of thousands of them a second; treat them as immutable. Op classes are
declared by their layout (`OpMeta`, `layout.compile_op`); `ops` declares Zimbra's.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, ClassVar

from standby.redolog import javafmt, layout
from standby.redolog.codec import DecodeError, Out, Truncated

MARKER = b"ZMREDO"
VERSION = (1, 42)
HEAD = struct.Struct(">6shhiqiiiiq")
HEAD_OLD = struct.Struct(">6shhiqiiiii")  # versions before 1.26: int32 mailbox id
HEAD_SIZE = HEAD.size
assert HEAD_SIZE == 46

MAILBOX_ALL = -1
MAILBOX_UNKNOWN = 0


class OpMeta(type):
    """Builds an op class from its `LAYOUT` (a tuple of `layout.Field`s in wire order): slots,
    `__init__`, `decode_data`, `encode_data` and, from `TEXT`, `printable`."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> OpMeta:
        fields = ns.get("LAYOUT")
        if fields is not None:
            ns["__slots__"] = tuple(fl.name for fl in fields if not fl.hidden)
        cls: Any = super().__new__(mcls, name, bases, ns)  # Any: attributes made below
        if fields is not None:
            c = layout.compile_op(cls, tuple(fields), ns.get("PARAMS"), VERSION)
            cls.decode_data = classmethod(c.decode)
            cls.encode_data = c.encode
            cls.__init__ = c.init
            cls._slot_names = c.names
            cls.FIELDS = c.fields
            blobs = [n for n, fl in c.fields.items() if isinstance(fl.wire, layout.Blob)]
            cls._blob_field = blobs[0] if blobs else None
            if "TEXT" in ns:
                cls.printable = javafmt.compile_text(cls, ns["TEXT"])
        made: OpMeta = cls
        return made


class Op(metaclass=OpMeta):
    """Base of the op payload classes. Each subclass sets OPCODE, NAME (Zimbra's
    `getOperation().name()` for it), LAYOUT and TEXT (its `getPrintableData`); the metaclass
    derives the codec from them."""

    OPCODE: ClassVar[int] = 0
    NAME: ClassVar[str] = ""
    CLASS: ClassVar[str] = ""  # Zimbra's class, where it is not NAME (CreateLink logs opcode 35)
    FIELDS: ClassVar[dict[str, layout.Field]] = {}
    # Fields a record older than the version given does not carry, which Zimbra's reader sets
    # to the op's own time (`getTimestamp()`), as CreateMessage's received date before 1.4.
    OP_TIME_BEFORE: ClassVar[dict[str, tuple[int, int]]] = {}
    _blob_field: ClassVar[str | None] = None
    __slots__ = ()

    if TYPE_CHECKING:
        # Fields are slots made from LAYOUT, which a type checker cannot see.
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...
        def __getattr__(self, name: str) -> Any: ...

    def encode_data(self, out: Out, version: tuple[int, int] = VERSION) -> None:
        raise TypeError(f"{type(self).__name__} does not define its payload layout")

    @classmethod
    def decode_data(cls, buf: bytes, pos: int, version: tuple[int, int]) -> tuple[Op, int]:
        raise TypeError(f"{cls.__name__} does not define its payload layout")

    @property
    def is_start_marker(self) -> bool:
        return self.OPCODE not in (1, 3, 4)

    @property
    def printed_name(self) -> str:
        """The name zmredodump prints in brackets (Zimbra's `getOperation().name()`)."""
        return self.NAME

    @property
    def blob(self) -> bytes | None:
        """Raw blob bytes carried after the op data, if any (`getAdditionalDataStream`)."""
        name = self._blob_field
        if name is None:
            return None
        data: bytes | None = getattr(self, name)
        wire = self.FIELDS[name].wire
        if not data and isinstance(wire, layout.Blob) and wire.none_if_empty:
            return None
        return data

    def printable(self, version: tuple[int, int] = VERSION) -> str | None:
        """The data part of zmredodump's line (`getPrintableData`); None where Zimbra's is null."""
        return None

    def fields(self) -> dict[str, Any]:
        """The op's own fields for JSON output: a blob as its length (`dataLen`)."""
        out: dict[str, Any] = {}
        for name, fl in self.FIELDS.items():
            v = getattr(self, name)
            if isinstance(fl.wire, layout.Blob):
                out["dataLen"] = None if v is None else len(v)
            else:
                out[name] = fl.json(v)
        return out

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in op_fields(type(self)))

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}={getattr(self, s)!r}" for s in op_fields(type(self)))
        return f"{type(self).__name__}({inner})"

    __hash__ = None  # type: ignore[assignment]


def op_fields(cls: type) -> tuple[str, ...]:
    """The names of an op class's payload fields, in wire order (its slots).

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


# Opcode -> the class Zimbra's reader instantiates for it (`MailboxOperation.fromInt(code)
# .name()`), plus the writers whose records carry an opcode of another class's name.
REGISTRY: dict[int, type[Op]] = {}
ALTERNATIVES: dict[int, tuple[type[Op], ...]] = {}


def register(cls: type[Op], opcode: int | None = None) -> type[Op]:
    REGISTRY[cls.OPCODE if opcode is None else opcode] = cls
    return cls


def register_alternative(opcode: int, cls: type[Op]) -> None:
    """`cls` also writes records with this opcode in its own layout (Zimbra reads them as the
    registered class and misparses them); the reader tries it when that layout does not end
    at a record boundary."""
    ALTERNATIVES[opcode] = (*ALTERNATIVES.get(opcode, ()), cls)


class Record:
    """A decoded record: header fields, the op, and where it was found (offset, length)."""

    __slots__ = (
        "change_constraint",
        "change_id",
        "length",
        "mailbox_id",
        "offset",
        "op",
        "opcode",
        "tstamp",
        "txn_counter",
        "txn_time",
        "version",
    )

    def __init__(self, op: Op, tstamp: int, txn_time: int, txn_counter: int, mailbox_id: int,
                 change_id: int = -1, change_constraint: int = 0,
                 version: tuple[int, int] = VERSION, offset: int = -1, length: int = 0,
                 opcode: int | None = None) -> None:
        self.op = op
        self.opcode = op.OPCODE if opcode is None else opcode  # the opcode on the wire
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
        head = HEAD if self.version >= (1, 26) else HEAD_OLD
        out.raw(head.pack(MARKER, self.version[0], self.version[1], self.opcode, self.tstamp,
                          self.change_id, self.change_constraint, self.txn_time,
                          self.txn_counter, self.mailbox_id))
        self.op.encode_data(out, self.version)
        return bytes(out.buf)


class UnknownOpcode(DecodeError):
    def __init__(self, opcode: int, reason: str = "") -> None:
        super().__init__(f"unknown opcode {opcode}{reason}")
        self.opcode = opcode


# Opcodes MailboxOperation names but no op class reads or writes: a record with one has no
# layout to skip it by.
CLASSLESS: dict[int, str] = {}


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
        name = CLASSLESS.get(opcode)
        raise UnknownOpcode(opcode, f" ({name}: Zimbra has no op class for it)" if name else "")
    alts = ALTERNATIVES.get(opcode)
    if alts is None:
        try:
            op, end = cls.decode_data(buf, end, version)
        except (struct.error, IndexError) as e:
            raise Truncated(f"{cls.NAME} at offset {pos} runs past the end") from e
    else:
        op, end = _decode_alternatives((cls, *alts), buf, end, version, pos)
    if version is not VERSION:  # (a 1.42 record carries every field)
        for name, since in op.OP_TIME_BEFORE.items():
            if version < since:
                setattr(op, name, tstamp)
    return Record(op, tstamp, ttime, tcount, mbox, change_id, constraint, version, pos,
                  end - pos, opcode), end


def _decode_alternatives(classes: tuple[type[Op], ...], buf: bytes, start: int,
                         version: tuple[int, int], pos: int) -> tuple[Op, int]:
    """The first layout that ends where a record can (the next marker, or the end of the
    buffer); failing that the first that parses; failing that the first one's error."""
    first: tuple[Op, int] | None = None
    error: DecodeError | None = None
    for cls in classes:
        try:
            op, end = cls.decode_data(buf, start, version)
        except (struct.error, IndexError):
            error = error or Truncated(f"{cls.NAME} at offset {pos} runs past the end")
            continue
        except DecodeError as e:
            error = error or e
            continue
        if end == len(buf) or buf[end:end + 6] == MARKER:
            return op, end
        first = first or (op, end)
    if first is not None:
        return first
    assert error is not None
    raise error

