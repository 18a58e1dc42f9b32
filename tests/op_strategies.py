"""Hypothesis strategies for every op, read off its layout (field by field, wire by wire).

Values cover each wire's whole range: int8/16/32/64 bounds, null where the wire allows it,
non-ASCII and 4-byte UTF-8 text, Metadata strings (valid BEncoding and arbitrary text), lists,
optional values and structs. A conditional field gets the value the decoder would give it when
its condition is false (Zimbra writes nothing then), so a drawn op is one the wire can carry.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from standby.redolog import layout, metadata
from standby.redolog.layout import Expr, Field, Wire
from standby.redolog.record import Op

I8 = st.integers(-(2**7), 2**7 - 1)
I16 = st.integers(-(2**15), 2**15 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.one_of(
    st.text(max_size=24),
    st.text(alphabet="äöüßéñ€中文字😀🎉\u0000\u00ff\uffff,\\=:;de", max_size=12),
    st.just(""),
)
OPT_TEXT = st.none() | TEXT
_PRIMS: dict[str, st.SearchStrategy[Any]] = {
    "?": st.booleans(), "b": I8, "h": I16, "i": I32, "q": I64,
}

META_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
META_MAPS = st.dictionaries(st.text(max_size=6).filter(lambda k: k != "v"), META_VALUES,
                            max_size=5)
META_TEXT = st.one_of(META_MAPS.map(metadata.to_string), TEXT)


def wire_strategy(w: Wire) -> st.SearchStrategy[Any]:
    if isinstance(w, layout.Const):
        return st.just(w.value)
    if isinstance(w, layout.Prim):
        if isinstance(w.cast, type) and w.cast is bool:
            return st.booleans()
        if w.fixed is None and w.st.format.endswith("b"):
            return st.sampled_from([1, 3])  # SetRetentionPolicy's type check
        return _PRIMS[w.fixed or "b"]
    if isinstance(w, layout.Seconds):
        return st.integers(-(2**31), 2**31 - 1).map(lambda s: s * 1000)
    if isinstance(w, layout.Utf):
        return st.none() | META_TEXT if w.meta else OPT_TEXT
    if isinstance(w, layout.UtfArray):
        return st.none() | st.lists(TEXT, max_size=4).map(tuple)
    if isinstance(w, layout.Ints):
        return st.lists(I32, max_size=8).map(tuple)
    if isinstance(w, layout.Bytes | layout.Blob):
        return st.binary(max_size=200)
    if isinstance(w, layout.Optional):
        return st.none() | wire_strategy(w.wire)
    if isinstance(w, layout.Struct):
        return struct_strategy(w.fields)
    if isinstance(w, layout.ListOf):
        items = st.lists(wire_strategy(w.item), max_size=5)
        seqs = items.map(lambda xs: tuple(dict.fromkeys(xs)) if w.dedup else tuple(xs))
        if w.empty_is_none:
            return seqs.map(lambda t: t or None)
        if w.negative_is_none:
            return st.none() | seqs
        return seqs
    # Wires of one op's own (legacy tags, ids and types): by what they hold.
    name = type(w).__name__
    if name == "IdsAndTypes":
        return st.lists(st.tuples(I32, I8), max_size=5).map(tuple)
    if name == "TagIdString":
        return st.none() | st.lists(st.text("0123456789", min_size=1, max_size=3),
                                    min_size=1, max_size=3).map(tuple)
    if name == "LegacyTagId":
        return st.integers(-(2**31), 2**31 - 1).map(str)
    raise TypeError(f"no strategy for {w!r}")


def _canon(fields: tuple[Field, ...], values: dict[str, Any],
           version: tuple[int, int]) -> dict[str, Any]:
    """What decoding gives back at `version`: fields off the wire or gated out take their
    absent value."""
    env = dict(values)
    for fl in fields:
        if fl.hidden:
            env[fl.name] = eval(fl.value.src, {}, env) if isinstance(fl.value, Expr) else fl.value
    out = dict(values)
    for fl in fields:
        wire = layout.pick(fl.alternatives(), version)
        on_wire = wire is not None and (fl.when is None or eval(fl.when, {}, env))
        if not on_wire:
            absent = fl.absent_value
            v = eval(absent.src, {}, env) if isinstance(absent, Expr) else absent
            if not fl.hidden:
                out[fl.name] = v
            env[fl.name] = v
    return out


def struct_strategy(fields: tuple[Field, ...]) -> st.SearchStrategy[tuple[Any, ...]]:
    stored = [fl for fl in fields if not fl.hidden]

    @st.composite
    def draw(d: st.DrawFn) -> tuple[Any, ...]:
        values = {fl.name: d(field_strategy(fl, layout.CURRENT)) for fl in stored}
        values = _canon(fields, values, layout.CURRENT)
        return tuple(values[fl.name] for fl in stored)

    return draw()


def field_strategy(fl: Field, version: tuple[int, int]) -> st.SearchStrategy[Any]:
    wire = layout.pick(fl.alternatives(), version) or fl.wire
    return wire_strategy(wire)


def op_strategy(cls: type[Op], version: tuple[int, int] = layout.CURRENT
                ) -> st.SearchStrategy[Op]:
    fields: tuple[Field, ...] = getattr(cls, "LAYOUT")  # noqa: B009 - made by OpMeta
    stored = [fl for fl in fields if not fl.hidden]

    @st.composite
    def draw(d: st.DrawFn) -> Op:
        values = {fl.name: d(field_strategy(fl, version)) for fl in stored}
        values = _canon(fields, values, version)
        return cls(**values)

    return draw()


def versions_of(cls: type[Op]) -> list[tuple[int, int]]:
    """Every version at which the op's layout changes, plus the current one."""
    out = {layout.CURRENT}

    def walk(fields: tuple[Field, ...]) -> None:
        for fl in fields:
            for v, w in fl.alternatives():
                if v != (0, 0):
                    out.add(v)
                    out.add((v[0], v[1] - 1))
                if isinstance(w, layout.Struct):
                    walk(w.fields)
                if isinstance(w, layout.ListOf) and isinstance(w.item, layout.Struct):
                    walk(w.item.fields)
                if isinstance(w, layout.Optional) and isinstance(w.wire, layout.Struct):
                    walk(w.wire.fields)

    walk(getattr(cls, "LAYOUT"))  # noqa: B009 - made by OpMeta
    return sorted(out)
