"""Java's `toString` shapes that zmredodump's text depends on.

`jstr` is `String.valueOf` (null, true/false, `[a, b]` for lists and arrays); `type_name` is
`MailItem.Type.toString()` (lower-case enum name; a byte Zimbra does not define reads as UNKNOWN);
`encode_tags` is `TagUtil.encodeTags`; `to_string_helper` is Guava's `MoreObjects.toStringHelper`;
`rights` is `ACL.rightsToString`; `strip_controls` is `StringUtil.stripControlCharacters`.

The Java collections and encodings themselves live in `javahash` (HashMap order) and `metadata`
(Zimbra's BEncoding); `string_hash`, `hashmap_order`, `bdecode`, `bencode_map` and
`custom_metadata_map` are kept here under their earlier names.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

from standby.redolog import javahash, metadata

# MailItem.Type, in enum order (EnumSet iterates so).
TYPE_NAMES: dict[int, str] = {
    -1: "unknown", 1: "folder", 2: "searchfolder", 3: "tag", 4: "conversation", 5: "message",
    6: "contact", 7: "invite", 8: "document", 9: "note", 10: "flag", 11: "appointment",
    12: "virtual_conversation", 13: "mountpoint", 14: "wiki", 15: "task", 16: "chat",
    17: "comment", 18: "link",
}


def type_name(t: int) -> str:
    return TYPE_NAMES.get(t, "unknown")


def jstr(v: object) -> str:
    """String.valueOf for the values ops hold."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, tuple | list):
        return "[" + ", ".join(jstr(x) for x in v) + "]"
    return str(v)


def jbool(b: bool) -> str:
    return "true" if b else "false"


def encode_tags(tags: Iterable[str] | None) -> str:
    """TagUtil.encodeTags: names joined by ',', with '\\' and ',' escaped."""
    if not tags:
        return ""
    return ",".join(t.replace("\\", "\\\\").replace(",", "\\,") for t in tags)


def join(items: Sequence[object] | None, sep: str = ",") -> str:
    """StringUtil.join (null for a null array)."""
    return "null" if items is None else sep.join(jstr(x) for x in items)


def to_string_helper(name: str, *pairs: tuple[str, object]) -> str:
    """Guava MoreObjects.toStringHelper(obj).add(k, v)...toString()."""
    return name + "{" + ", ".join(f"{k}={jstr(v)}" for k, v in pairs) + "}"


_RIGHTS = ((0x0001, "r"), (0x0002, "w"), (0x0004, "i"), (0x0008, "d"), (0x0010, "x"),
           (0x0100, "a"), (0x0400, "p"), (0x0800, "f"), (0x0200, "c"))


def rights(r: int) -> str:
    """ACL.rightsToString."""
    return "".join(ch for bit, ch in _RIGHTS if r & bit)


def strip_controls(s: str | None) -> str | None:
    """StringUtil.stripControlCharacters: controls other than tab, LF, CR, U+FFFE, U+FFFF and
    unpaired surrogates removed."""
    if not s:
        return s
    return "".join(c for c in s if not (
        (c < "\x20" and c not in "\t\n\r") or c in "\ufffe\uffff" or "\ud800" <= c <= "\udfff"))


# Earlier names, used by the tests of the golden dump.
string_hash = javahash.string_hash
bdecode = metadata.decode
bencode_map = metadata.to_string


def hashmap_order(keys: list[str], *, capacity: int = 16) -> list[str]:
    return [str(k) for k in javahash.hashmap_order(keys, capacity=capacity)]


def custom_metadata_map(value: str | None) -> str:
    """The `{k=v, ...}` part of CustomMetadata.toString() for a serialized value."""
    text = metadata.custom_text("", value)
    return "{}" if text is None else text[2:]


# --------------------------------------------------------------------------------------------
# getPrintableData as data: templates compiled into `printable(op, version)`


class If:
    """A part of a template printed only when `cond` (an expression over the op's field names
    and `version`) is true."""

    def __init__(self, cond: str, template: str) -> None:
        self.cond, self.template = cond, template


TextSpec = Union[None, str, If, tuple[Union[str, If], ...], Callable[[Any, Any], Union[str, None]]]

# `{name:spec}` in a template: how the value is printed (default: String.valueOf).
FORMATS: dict[str, Callable[[Any], str]] = {
    "type": type_name,
    "tags": encode_tags,
    "join": join,
    "rights": rights,
    "TF": lambda b: "TRUE" if b else "FALSE",
    "meta": lambda s: "null" if s is None else metadata.canonical(s),
}


def compile_text(cls: type, spec: TextSpec) -> Callable[..., str | None]:
    """`printable(self, version)` for a template (or parts), a function, or None (null)."""
    if spec is None:
        return lambda self, version=None: None
    if callable(spec) and not isinstance(spec, If):
        fn = spec
        return lambda self, version=None: fn(self, version)
    parts = spec if isinstance(spec, tuple) else (spec,)
    names = getattr(cls, "_slot_names", ())
    g = _TextGen()
    g.line("def printable(self, version=None):")
    g.indent += 1
    for n in names:
        g.line(f"{n} = self.{n}")
    g.line("_p = []")
    for part in parts:
        if isinstance(part, If):
            g.line(f"if {part.cond}:")
            g.indent += 1
            g.template(part.template)
            g.indent -= 1
        else:
            g.template(part)
    g.line("return ''.join(_p)")
    ns: dict[str, Any] = {"_j": jstr, "_F": FORMATS}
    src = "\n".join(g.lines)
    exec(compile(src, f"<text {cls.__name__}>", "exec"), ns)  # noqa: S102 - our own source
    printable: Callable[..., str | None] = ns["printable"]
    return printable


class _TextGen:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.indent = 0

    def line(self, s: str) -> None:
        self.lines.append("    " * self.indent + s)

    def template(self, t: str) -> None:
        for literal, name, spec, _conv in string.Formatter().parse(t):
            if literal:
                self.line(f"_p.append({literal!r})")
            if name is not None:
                if spec:
                    if spec not in FORMATS:
                        raise ValueError(f"unknown format {spec!r} in {t!r}")
                    self.line(f"_p.append(_F[{spec!r}]({name}))")
                else:
                    self.line(f"_p.append(_j({name}))")
