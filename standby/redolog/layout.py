"""Op payloads described as data, compiled into their decoders and encoders.

An op's payload is a tuple of `Field`s in wire order, each with a wire type (`BOOL`, `BYTE`,
`SHORT`, `INT`, `LONG`, `UTF`, `UTF_ARRAY`, `INTS`, `BYTES`, `BLOB`, `ListOf`, `Struct`,
`Optional`, `Const`, ...) and, where Zimbra's `deserializeData` branches on
`getVersion().atLeast(x, y)`, the wire it reads from which version on (`since`/`before`, or
`gates` for several steps). A field may be conditional on earlier ones (`when`, an expression
over their names, with an `otherwise` wire read and written in the other case), and `hidden`
(read and written, e.g. Zimbra's unused `-1` markers, or computed on write from other fields by
an `Expr`, never stored). Encoders follow the same version branches as the decoders, so a record
of any version encodes back to its own bytes.

`compile_op` turns a layout into three functions: `decode(cls, buf, pos, version) -> (op, pos)`,
`encode(op, out, version)` and `__init__`. They are generated as straight-line Python source
(`exec`, as dataclasses and namedtuple do) because the reader decodes hundreds of thousands of
records a second: runs of fixed-width fields become one `struct` call, and records of the current
version (1.42) take a branch with every version test already resolved. `source_of(cls)` shows the
generated code.

Invariant (tested per op by Hypothesis): for every value of every field, decoding the encoding
gives equal values and consumes exactly the encoded bytes; encoding is a function of the values.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from standby.redolog import metadata
from standby.redolog.codec import (
    DecodeError,
    Out,
    Truncated,
    r_bytes,
    r_i32_array,
    r_inline_bytes,
    r_utf,
    r_utf_array,
    unpack_run,
    w_bytes,
    w_i32_array,
    w_utf,
    w_utf_array,
)

Version = tuple[int, int]
CURRENT: Version = (1, 42)


@dataclass(frozen=True)
class Expr:
    """A Python expression over the op's field names (a computed default or hidden value)."""

    src: str


class Wire:
    """A wire type. `fixed` is its struct code when it is a fixed-width primitive."""

    fixed: str | None = None
    nullable = True

    def decode(self, g: _Gen, var: str) -> None:
        raise NotImplementedError

    def encode(self, g: _Gen, expr: str) -> None:
        raise NotImplementedError

    def coerce(self, v: Any) -> Any:
        return v

    def json(self, v: Any) -> Any:
        return v

    def __repr__(self) -> str:
        return type(self).__name__


class Prim(Wire):
    nullable = False

    def __init__(self, code: str, name: str, cast: Callable[[Any], Any] = int) -> None:
        self.fixed, self.name, self.cast = code, name, cast
        self.st = struct.Struct(">" + code)

    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"{var}, = {g.ref(self.st.unpack_from)}(buf, pos)")
        g.line(f"pos += {self.st.size}")

    def encode(self, g: _Gen, expr: str) -> None:
        g.line(f"buf += {g.ref(self.st.pack)}({expr})")

    def coerce(self, v: Any) -> Any:
        return self.cast(v)

    def __repr__(self) -> str:
        return self.name


BOOL = Prim("?", "BOOL", bool)
BYTE = Prim("b", "BYTE")
SHORT = Prim("h", "SHORT")
INT = Prim("i", "INT")
LONG = Prim("q", "LONG")


class Const(Wire):
    """A value Zimbra writes and ignores on read (a `-1` where a volume id was, a `true`)."""

    def __init__(self, wire: Wire, value: Any) -> None:
        self.wire, self.value = wire, value
        self.fixed = wire.fixed

    def decode(self, g: _Gen, var: str) -> None:
        self.wire.decode(g, var)

    def encode(self, g: _Gen, expr: str) -> None:
        self.wire.encode(g, g.ref(self.value))

    def __repr__(self) -> str:
        return f"Const({self.wire!r}, {self.value!r})"


class Utf(Wire):
    """`ByteUtil.writeUTF8`: int32 byte length (-1 = null) and UTF-8 bytes."""

    def __init__(self, *, meta: bool = False) -> None:
        self.meta = meta  # the string is a serialized Metadata (decoded for JSON)

    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"{var}, pos = {g.ref(r_utf)}(buf, pos)")

    def encode(self, g: _Gen, expr: str) -> None:
        g.line(f"{g.ref(w_utf)}(buf, {expr})")

    def json(self, v: Any) -> Any:
        return metadata.as_json(v) if self.meta else v


UTF = Utf()
META = Utf(meta=True)


class UtfArray(Wire):
    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"{var}, pos = {g.ref(r_utf_array)}(buf, pos)")

    def encode(self, g: _Gen, expr: str) -> None:
        g.line(f"{g.ref(w_utf_array)}(buf, {expr})")

    def coerce(self, v: Any) -> Any:
        return None if v is None else tuple(v)


UTF_ARRAY = UtfArray()


class Ints(Wire):
    """int32 count and int32 values."""

    nullable = False

    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"{var}, pos = {g.ref(r_i32_array)}(buf, pos)")

    def encode(self, g: _Gen, expr: str) -> None:
        g.line(f"{g.ref(w_i32_array)}(buf, {expr})")

    def coerce(self, v: Any) -> Any:
        return tuple(v)


INTS = Ints()


class Bytes(Wire):
    """int32 length and bytes, inside the payload. Java reads nothing for a length <= 0."""

    nullable = False

    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"{var}, pos = {g.ref(r_inline_bytes)}(buf, pos)")

    def encode(self, g: _Gen, expr: str) -> None:
        g.line(f"{g.ref(w_bytes)}(buf, {expr})")

    def coerce(self, v: Any) -> Any:
        return bytes(v)

    def json(self, v: Any) -> Any:
        return base64.b64encode(bytes(v)).decode("ascii")


BYTES = Bytes()


class Blob(Wire):
    """The op's blob: its int32 length ends the payload and its bytes follow (Zimbra's
    `getAdditionalDataStream`). Decodes as a `BlobSpan` from a span-mapped log."""

    nullable = False

    def __init__(self, limit: int | None = None, *, none_if_empty: bool = False) -> None:
        self.limit = limit
        self.none_if_empty = none_if_empty  # Zimbra has no blob stream for a length of 0

    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"_n, = {g.ref(_I32.unpack_from)}(buf, pos)")
        if self.limit is not None:
            g.line(f"if _n > {self.limit}:")
            with g.block():
                g.line(f"raise {g.ref(DecodeError)}(f'deserialized message size too large "
                       "({_n} bytes)')")
        g.line(f"{var}, pos = {g.ref(r_bytes)}(buf, pos + 4, _n)")

    def encode(self, g: _Gen, expr: str) -> None:
        g.line(f"{g.ref(w_bytes)}(buf, {expr})")

    def coerce(self, v: Any) -> Any:
        return v if isinstance(v, bytes | bytearray) else bytes(v)


BLOB = Blob()


class Optional(Wire):
    """A presence flag (bool) then the value; absent is None (`Long date` and the like)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"_has, = {g.ref(_BOOL.unpack_from)}(buf, pos)")
        g.line("pos += 1")
        g.line("if _has:")
        with g.block():
            self.wire.decode(g, var)
        g.line("else:")
        with g.block():
            g.line(f"{var} = None")

    def encode(self, g: _Gen, expr: str) -> None:
        tmp = g.tmp()
        g.line(f"{tmp} = {expr}")
        g.line(f"buf.append(0 if {tmp} is None else 1)")
        g.line(f"if {tmp} is not None:")
        with g.block():
            self.wire.encode(g, tmp)

    def coerce(self, v: Any) -> Any:
        return None if v is None else self.wire.coerce(v)

    def json(self, v: Any) -> Any:
        return None if v is None else self.wire.json(v)


class Seconds(Wire):
    """An int32 of seconds on the wire, milliseconds in the value (old CreateFolder dates)."""

    nullable = False

    def decode(self, g: _Gen, var: str) -> None:
        g.line(f"{var}, = {g.ref(_I32.unpack_from)}(buf, pos)")
        g.line(f"{var} *= 1000")
        g.line("pos += 4")

    def encode(self, g: _Gen, expr: str) -> None:
        g.line(f"buf += {g.ref(_I32.pack)}(({expr}) // 1000)")


class ListOf(Wire):
    """A count (int32 unless told) then that many items. Java loops `for (i < count)`, so a
    negative count reads as no items; a count the remaining bytes cannot hold is refused."""

    nullable = False

    def __init__(self, item: Wire, count: Prim = INT, *, min_item: int = 1,
                 empty_is_none: bool = False, negative_is_none: bool = False,
                 dedup: bool = False, limit: int | None = None) -> None:
        self.item, self.count, self.min_item = item, count, min_item
        self.empty_is_none, self.negative_is_none = empty_is_none, negative_is_none
        self.dedup, self.limit = dedup, limit  # dedup: a LinkedHashSet, first place kept

    def decode(self, g: _Gen, var: str) -> None:
        n, items = g.tmp(), g.tmp()
        self.count.decode(g, n)
        if self.limit is not None:
            g.line(f"if {n} > {self.limit}:")
            with g.block():
                g.line(f"raise {g.ref(DecodeError)}(f'list of {{{n}}} entries is too long')")
        g.line(f"if {n} * {self.min_item} > len(buf) - pos:")
        with g.block():
            g.line(f"raise {g.ref(Truncated)}(f'list of {{{n}}} entries runs past the end')")
        if isinstance(self.item, Prim) and self.item.fixed:
            # One struct call for a run of numbers.
            code, size = self.item.fixed, self.item.st.size
            g.line(f"{items} = {g.ref(unpack_run)}(buf, pos, {n}, {code!r})")
            g.line(f"pos += {size} * max({n}, 0)")
        else:
            g.line(f"{items} = []")
            g.line(f"for _ in range({n}):")
            with g.block():
                item = g.tmp()
                self.item.decode(g, item)
                g.line(f"{items}.append({item})")
        seq = f"dict.fromkeys({items})" if self.dedup else items
        if self.empty_is_none:
            g.line(f"{var} = tuple({seq}) if {items} else None")
        elif self.negative_is_none:
            g.line(f"{var} = tuple({seq}) if {n} >= 0 else None")
        else:
            g.line(f"{var} = tuple({seq})")

    def encode(self, g: _Gen, expr: str) -> None:
        tmp, item = g.tmp(), g.tmp()
        if self.negative_is_none:
            g.line(f"{tmp} = {expr}")
            self.count.encode(g, f"-1 if {tmp} is None else len({tmp})")
            g.line(f"{tmp} = {tmp} or ()")
        else:
            g.line(f"{tmp} = {expr} or ()")
            self.count.encode(g, f"len({tmp})")
        g.line(f"for {item} in {tmp}:")
        with g.block():
            self.item.encode(g, item)

    def coerce(self, v: Any) -> Any:
        if v is None or (self.empty_is_none and not v):
            return None if self.empty_is_none or self.negative_is_none else ()
        items = (self.item.coerce(x) for x in v)
        return tuple(dict.fromkeys(items)) if self.dedup else tuple(items)

    def json(self, v: Any) -> Any:
        return None if v is None else [self.item.json(x) for x in v]


class Struct(Wire):
    """Several fields read as one tuple (an entry of a list, a calendar item's invite)."""

    nullable = False

    def __init__(self, *fields: Field) -> None:
        self.fields = _normalize(fields)
        self.names = tuple(f.name for f in self.fields if not f.hidden)
        self._dec: Callable[..., Any] | None = None
        self._enc: Callable[..., Any] | None = None

    def _compiled(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        if self._dec is None or self._enc is None:
            self._dec, self._enc = _compile_struct(self)
        return self._dec, self._enc

    def decode(self, g: _Gen, var: str) -> None:
        if self._plain():
            # No branches: the fields inline, under names of their own (contacts' fields are
            # read in a loop of these).
            names = []
            for fl in self.fields:
                tmp = g.tmp()
                fl.wire.decode(g, tmp)
                if not fl.hidden:
                    names.append(tmp)
            g.line(f"{var} = ({''.join(n + ', ' for n in names)})")
            return
        dec, _ = self._compiled()
        g.line(f"{var}, pos = {g.ref(dec)}(buf, pos, version)")

    def _plain(self) -> bool:
        return all(fl.when is None and fl.alternatives() == (((0, 0), fl.wire),)
                   and not isinstance(fl.value, Expr) for fl in self.fields)

    def encode(self, g: _Gen, expr: str) -> None:
        _, enc = self._compiled()
        g.line(f"{g.ref(enc)}(buf, {expr}, version)")

    def coerce(self, v: Any) -> Any:
        vals = tuple(v)
        stored = [f for f in self.fields if not f.hidden]
        return tuple(f.coerce(x) for f, x in zip(stored, vals))

    def json(self, v: Any) -> Any:
        stored = [f for f in self.fields if not f.hidden]
        return {camel(f.name): f.json(x) for f, x in zip(stored, v)}


_MISSING = object()
_REQUIRED = object()


@dataclass(frozen=True)
class Field:
    name: str
    wire: Wire
    default: Any = None  # the constructor default
    since: Version | None = None  # read from this version on ...
    before: Wire | None = None  # ... and this wire before it (else nothing)
    until: Version | None = None  # read only before this version
    # Several steps: (from version, wire or None), newest first.
    gates: tuple[tuple[Version, Wire | None], ...] = ()
    when: str | None = None
    otherwise: Wire | None = None
    absent: Any = _MISSING  # the value when not on the wire (default: `default`)
    hidden: bool = False
    value: Any = None  # hidden fields: the value written (a constant or an Expr)
    required: bool = False  # no constructor default

    def alternatives(self) -> tuple[tuple[Version, Wire | None], ...]:
        if self.gates:
            return self.gates
        if self.until is not None:
            return ((self.until, None), ((0, 0), self.wire))
        if self.since is None:
            return (((0, 0), self.wire),)
        alts: list[tuple[Version, Wire | None]] = [(self.since, self.wire)]
        if self.before is not None:
            alts.append(((0, 0), self.before))
        return tuple(alts)

    @property
    def absent_value(self) -> Any:
        return self.default if self.absent is _MISSING else self.absent

    def coerce(self, v: Any) -> Any:
        return v if v is None else self.wire.coerce(v)

    def json(self, v: Any) -> Any:
        return self.wire.json(v)


def camel(name: str) -> str:
    """A field name as JSON spells it (msg_id -> msgId)."""
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def f(name: str, wire: Wire, default: Any = None, **kw: Any) -> Field:
    return Field(name, wire, default, **kw)


def req(name: str, wire: Wire, **kw: Any) -> Field:
    """A field the constructor requires."""
    return Field(name, wire, required=True, **kw)


def hidden(name: str, wire: Wire, value: Any, **kw: Any) -> Field:
    return Field(name, wire, hidden=True, value=value, **kw)


def _normalize(fields: Sequence[Field]) -> tuple[Field, ...]:
    names = [x.name for x in fields]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate field names in {names}")
    return tuple(fields)


# --------------------------------------------------------------------------------------------
# Helpers the generated code calls


_I32 = struct.Struct(">i")
_BOOL = struct.Struct(">?")


# --------------------------------------------------------------------------------------------
# Code generation


class _Gen:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self._ids: dict[int, str] = {}
        self._indent = 0
        self._tmp = 0

    def line(self, s: str) -> None:
        self.lines.append("    " * self._indent + s)

    def block(self) -> _Indent:
        return _Indent(self)

    def ref(self, obj: Any) -> str:
        if isinstance(obj, bool | int | float | str | type(None)) and not isinstance(obj, Expr):
            return repr(obj)
        key = id(obj)
        name = self._ids.get(key)
        if name is None:
            name = self._ids[key] = f"_r{len(self._ids)}"
            self.ns[name] = obj
        return name

    def tmp(self) -> str:
        self._tmp += 1
        return f"_t{self._tmp}"

    def build(self, name: str) -> Callable[..., Any]:
        src = "\n".join(self.lines)
        exec(compile(src, f"<layout {name}>", "exec"), self.ns)  # noqa: S102 - our own source
        fn: Any = self.ns[name]
        fn.__layout_source__ = src
        built: Callable[..., Any] = fn
        return built


class _Indent:
    def __init__(self, g: _Gen) -> None:
        self.g = g

    def __enter__(self) -> None:
        self.g._indent += 1

    def __exit__(self, *exc: object) -> None:
        self.g._indent -= 1


def _value_src(g: _Gen, v: Any) -> str:
    return f"({v.src})" if isinstance(v, Expr) else g.ref(v)


def pick(alts: tuple[tuple[Version, Wire | None], ...], version: Version) -> Wire | None:
    """The wire a field is read with at `version` (None: not on the wire)."""
    for v, w in alts:
        if version >= v:
            return w
    return None


def _decode_fields(g: _Gen, fields: tuple[Field, ...], version: Version | None) -> None:
    """Decode lines for `fields` into locals of their names. `version` None: test at run time
    (`version` is a local); else resolve every gate for that version now."""
    run: list[tuple[str, Wire]] = []

    def flush() -> None:
        if not run:
            return
        if len(run) == 1:
            run[0][1].decode(g, run[0][0])
        else:
            st = struct.Struct(">" + "".join(w.fixed or "" for _, w in run))
            targets = ", ".join(n for n, _ in run)
            g.line(f"{targets} = {g.ref(st.unpack_from)}(buf, pos)")
            g.line(f"pos += {st.size}")
        run.clear()

    for fld in fields:
        var = fld.name
        alts = fld.alternatives()
        if version is not None and fld.when is None:
            wire = pick(alts, version)
            if wire is None:
                flush()
                g.line(f"{var} = {_value_src(g, fld.absent_value)}")
            elif wire.fixed:
                run.append((var, wire))
            else:
                flush()
                wire.decode(g, var)
            continue
        flush()
        if fld.when is not None:
            g.line(f"if {fld.when}:")
            with g.block():
                _decode_alts(g, fld, var, alts, version)
            g.line("else:")
            with g.block():
                if fld.otherwise is not None:
                    fld.otherwise.decode(g, "_")
                g.line(f"{var} = {_value_src(g, fld.absent_value)}")
        else:
            _decode_alts(g, fld, var, alts, version)
    flush()


def _decode_alts(g: _Gen, fld: Field, var: str,
                 alts: tuple[tuple[Version, Wire | None], ...], version: Version | None) -> None:
    absent = _value_src(g, fld.absent_value)
    if version is not None:
        wire = pick(alts, version)
        if wire is None:
            g.line(f"{var} = {absent}")
        else:
            wire.decode(g, var)
        return
    if len(alts) == 1 and alts[0][0] == (0, 0) and alts[0][1] is not None:
        alts[0][1].decode(g, var)
        return
    first = True
    for v, wire in alts:
        g.line("else:" if v == (0, 0) else f"{'if' if first else 'elif'} version >= {v!r}:")
        with g.block():
            if wire is None:
                g.line(f"{var} = {absent}")
            else:
                wire.decode(g, var)
        first = False
    if alts[-1][0] != (0, 0):
        g.line("else:")
        with g.block():
            g.line(f"{var} = {absent}")


def _encode_fields(g: _Gen, fields: tuple[Field, ...], version: Version | None) -> None:
    """Encode lines for `fields`, whose values are locals of their names (hidden ones too)."""
    run: list[tuple[str, Wire]] = []

    def flush() -> None:
        if not run:
            return
        if len(run) == 1:
            run[0][1].encode(g, run[0][0])
        else:
            st = struct.Struct(">" + "".join(w.fixed or "" for _, w in run))
            g.line(f"buf += {g.ref(st.pack)}({', '.join(e for e, _ in run)})")
        run.clear()

    for fld in fields:
        alts = fld.alternatives()
        if version is not None and fld.when is None:
            wire = pick(alts, version)
            if wire is None:
                continue
            if wire.fixed:
                run.append((g.ref(wire.value) if isinstance(wire, Const) else fld.name, wire))
            else:
                flush()
                wire.encode(g, fld.name)
            continue
        flush()
        if fld.when is not None:
            g.line(f"if {fld.when}:")
            with g.block():
                _encode_alts(g, alts, fld.name, version)
            if fld.otherwise is not None:
                g.line("else:")
                with g.block():
                    fld.otherwise.encode(g, "None")
        else:
            _encode_alts(g, alts, fld.name, version)
    flush()


def _hidden_locals(g: _Gen, fields: tuple[Field, ...]) -> None:
    for fld in fields:
        if fld.hidden:
            g.line(f"{fld.name} = {_value_src(g, fld.value)}")


def _encode_alts(g: _Gen, alts: tuple[tuple[Version, Wire | None], ...], expr: str,
                 version: Version | None) -> None:
    if version is not None:
        wire = pick(alts, version)
        g.line("pass") if wire is None else wire.encode(g, expr)
        return
    if len(alts) == 1 and alts[0][0] == (0, 0) and alts[0][1] is not None:
        alts[0][1].encode(g, expr)
        return
    first = True
    for v, wire in alts:
        g.line("else:" if v == (0, 0) else f"{'if' if first else 'elif'} version >= {v!r}:")
        with g.block():
            g.line("pass") if wire is None else wire.encode(g, expr)
        first = False


def _compile_struct(s: Struct) -> tuple[Callable[..., Any], Callable[..., Any]]:
    g = _Gen()
    g.line("def _dec(buf, pos, version):")
    with g.block():
        _decode_fields(g, s.fields, None)
        g.line(f"return ({''.join(n + ', ' for n in s.names)}), pos")
    dec = g.build("_dec")
    e = _Gen()
    e.line("def _enc(buf, item, version):")
    with e.block():
        if s.names:
            e.line(f"{''.join(n + ', ' for n in s.names)} = item")
        _hidden_locals(e, s.fields)
        _encode_fields(e, s.fields, None)
        e.line("pass")
    enc = e.build("_enc")
    return dec, enc


@dataclass
class Compiled:
    decode: Callable[..., Any]
    encode: Callable[..., Any]
    init: Callable[..., Any]
    names: tuple[str, ...]
    fields: dict[str, Field] = field(default_factory=dict)


def compile_op(cls: type, fields: tuple[Field, ...], params: tuple[str, ...] | None,
               current: Version) -> Compiled:
    """Generate `decode`, `encode` and `__init__` for an op class with this layout."""
    fields = _normalize(fields)
    names = tuple(fl.name for fl in fields if not fl.hidden)
    by_name = {fl.name: fl for fl in fields if not fl.hidden}

    g = _Gen()
    g.ns["_new"] = object.__new__
    g.ns["_cls"] = cls
    g.ns["_CURRENT"] = current
    g.line("def decode(cls, buf, pos, version):")
    with g.block():
        g.line("if version is _CURRENT:")
        with g.block():
            _decode_fields(g, fields, current)
            g.line("pass")
        g.line("else:")
        with g.block():
            _decode_fields(g, fields, None)
            g.line("pass")
        g.line("o = _new(cls)")
        for n in names:
            g.line(f"o.{n} = {n}")
        g.line("return o, pos")
    decode = g.build("decode")

    e = _Gen()
    e.ns["_CURRENT"] = current
    e.line("def encode(self, out, version=_CURRENT):")
    with e.block():
        e.line("buf = out.buf")
        for n in names:
            e.line(f"{n} = self.{n}")
        _hidden_locals(e, fields)
        e.line("if version is _CURRENT:")
        with e.block():
            _encode_fields(e, fields, current)
            e.line("pass")
        e.line("else:")
        with e.block():
            _encode_fields(e, fields, None)
            e.line("pass")
    encode = e.build("encode")

    order = params if params is not None else names
    if set(order) != set(names):
        raise ValueError(f"{cls.__name__}: params {order} are not the fields {names}")
    i = _Gen()
    sig: list[str] = []
    late: list[str] = []
    for n in order:
        fl = by_name[n]
        if fl.required and not late and all(by_name[m].required for m in order[:order.index(n)]):
            sig.append(n)
        elif fl.required:  # after a defaulted parameter: still required, checked below
            sig.append(f"{n}={i.ref(_REQUIRED)}")
            late.append(n)
        else:
            sig.append(f"{n}={i.ref(fl.default)}")
    i.line(f"def __init__(self{''.join(', ' + s for s in sig)}):")
    with i.block():
        for n in late:
            i.line(f"if {n} is {i.ref(_REQUIRED)}:")
            with i.block():
                i.line(f"raise TypeError('{cls.__name__}() needs {n}')")
        for n in names:
            i.line(f"self.{n} = {i.ref(by_name[n].coerce)}({n})")
        if hasattr(cls, "_post_init"):
            i.line("self._post_init()")
        i.line("pass")
    init = i.build("__init__")
    return Compiled(decode, encode, init, names, by_name)


def source_of(fn: Callable[..., Any]) -> str:
    """The generated source of a compiled function (for debugging)."""
    return getattr(fn, "__layout_source__", "")


__all__ = [
    "BLOB", "Blob", "BOOL", "BYTE", "BYTES", "CURRENT", "INT", "INTS", "LONG", "META", "SHORT",
    "UTF",
    "UTF_ARRAY", "Compiled", "Const", "Expr", "Field", "ListOf", "Optional", "Prim", "Seconds",
    "Struct", "Wire", "compile_op", "f", "hidden", "req", "source_of", "Out",
]
