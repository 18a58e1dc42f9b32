"""Zimbra's `Metadata` encoding: the BEncoding inside custom-data, config and calendar ops.

Wire form (`common/util/BEncoding.java`): a map is `d` + (key, value)* + `e` with keys sorted in
Java's `String.compareTo` order (UTF-16 code units); a list is `l` + values + `e`; an integer
(Java Long/Integer/Short/Byte) is `i<decimal>e`; anything else is written through `toString()`
as `<length>:<text>`, the length counted in UTF-16 code units as Java's `String.length()`.
Null keys and values are skipped. `Metadata.toString()` adds the legacy version key `"v"` = 10.

Python values: `dict[str, Value]`, `list[Value]`, `int`, `str`. `bool` encodes as Java's
`Boolean.toString()` (the strings "true"/"false"), as `Metadata.put(key, boolean)` does; other
types are refused.

Decoding follows `Metadata(String)`: BEncoding first; if that fails on a number and the text
looks like UTF-8 read as ISO-8859-1, once more after undoing that; then the legacy `BlobMetaData`
form (`name=<len>:<value>;`...); and the legacy `"v"` key is dropped from the top-level map.
Strings are handled as UTF-16 code units throughout, so a length that splits a surrogate pair
decodes as Java's does (to a lone surrogate).

Invariants: `decode(encode(v)) == v` for every value without a top-level "v"; `encode(decode(s))
== s` for every string `encode` can produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Union

from standby.redolog import javahash

Value = Union[dict[str, "Value"], list["Value"], int, str]

LEGACY_VERSION_KEY = "v"
LEGACY_VERSION = 10
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


class InvalidMetadata(ValueError):
    """The text is neither BEncoding nor the legacy BlobMetaData form (Zimbra's
    `MailServiceException.INVALID_METADATA`)."""


class _BadEncoding(ValueError):
    def __init__(self, msg: str, *, number: bool = False) -> None:
        super().__init__(msg)
        self.number = number  # failed parsing a number (Java: NumberFormatException cause)


def _units(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def java_order(key: str) -> bytes:
    """Sort key giving Java's String.compareTo order (UTF-16 code units)."""
    return _units(key)


def java_length(s: str) -> int:
    return len(_units(s)) // 2


# --------------------------------------------------------------------------------------------
# Encoding


def encode(value: object) -> str:
    """BEncoding of a map, list or scalar (BEncoding.encode)."""
    out: list[str] = []
    _enc(value, out)
    return "".join(out)


def _enc(v: object, out: list[str]) -> None:
    if isinstance(v, dict):
        out.append("d")
        for k in sorted((k for k in v if k is not None), key=lambda k: java_order(str(k))):
            if v[k] is not None:
                _enc(str(k), out)
                _enc(v[k], out)
        out.append("e")
    elif isinstance(v, list | tuple):
        out.append("l")
        for x in v:
            if x is not None:
                _enc(x, out)
        out.append("e")
    elif isinstance(v, bool):
        _enc("true" if v else "false", out)
    elif isinstance(v, int):
        if not _LONG_MIN <= v <= _LONG_MAX:
            raise ValueError(f"{v} does not fit a Java long")
        out.append(f"i{v}e")
    elif isinstance(v, str):
        out.append(f"{java_length(v)}:{v}")
    else:
        raise TypeError(f"Metadata cannot hold a {type(v).__name__}")


def to_string(meta: Mapping[str, object]) -> str:
    """Metadata.toString(): the map with "v" = 10 added, encoded."""
    return encode({**meta, LEGACY_VERSION_KEY: LEGACY_VERSION})


# --------------------------------------------------------------------------------------------
# Decoding


def decode(text: str) -> Value:
    """Strict BEncoding.decode: the whole string must be one value."""
    units = _units(text)
    value, pos = _dec(units, 0)
    if value is None:
        raise _BadEncoding("unexpected end marker")
    if pos * 2 != len(units):
        raise _BadEncoding("extra characters at end of encoded string")
    return value


def _char(units: bytes, i: int) -> str:
    if i * 2 + 1 >= len(units):
        raise _BadEncoding("ran off the end of the encoded string")
    return chr((units[i * 2] << 8) | units[i * 2 + 1])


def _read_long(units: bytes, pos: int, terminator: str) -> tuple[int, int]:
    start = pos
    while _char(units, pos) != terminator:
        pos += 1
    digits = units[start * 2:pos * 2].decode("utf-16-be", "surrogatepass")
    try:
        n = _parse_long(digits)
    except ValueError as e:
        raise _BadEncoding(f"bad number {digits!r}", number=True) from e
    return n, pos + 1


def _parse_long(s: str) -> int:
    """Long.parseLong: optional sign, ASCII digits, within the long range."""
    body = s[1:] if s[:1] in ("-", "+") else s
    if not body or not all("0" <= c <= "9" for c in body):
        raise ValueError(s)
    n = int(s)
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise ValueError(s)
    return n


def _dec(units: bytes, pos: int) -> tuple[Value | None, int]:
    c = _char(units, pos)
    pos += 1
    if c == "d":
        d: dict[str, Value] = {}
        while True:
            key, pos = _dec(units, pos)
            if key is None:
                return d, pos
            value, pos = _dec(units, pos)
            if value is None:
                raise _BadEncoding(f"missing dictionary value for key {key}")
            # Java puts the key's toString(); a re-put keeps the first position.
            d[key if isinstance(key, str) else _raw_text(key)] = value
    if c == "l":
        lst: list[Value] = []
        while True:
            item, pos = _dec(units, pos)
            if item is None:
                return lst, pos
            lst.append(item)
    if c == "e":
        return None, pos
    if c == "i":
        return _read_long(units, pos, "e")
    n, pos = _read_long(units, pos - 1, ":")
    if n < 0 or (pos + n) * 2 > len(units):
        raise _BadEncoding(f"string length {n} runs past the end")
    return units[pos * 2:(pos + n) * 2].decode("utf-16-be", "surrogatepass"), pos + n


def _blob_metadata(text: str) -> dict[str, Value]:
    """BlobMetaData.decodeRecursive: `name=<len>:<value>;`..., values that look encoded again
    decoded again (a failure there keeps the string)."""
    out: dict[str, Value] = {}
    units = _units(text)
    n = len(units) // 2
    offset = 0

    def at(i: int) -> str:
        return chr((units[i * 2] << 8) | units[i * 2 + 1])

    def sub(a: int, b: int) -> str:
        return units[a * 2:b * 2].decode("utf-16-be", "surrogatepass")

    while offset < n:
        p = next((i for i in range(offset, n) if at(i) == "="), -1)
        if p < 0:
            break
        name = sub(offset, p)
        p += 1
        i = p
        while p < n and at(p).isdecimal():  # Character.isDigit
            p += 1
        if p >= n or at(p) != ":":
            raise InvalidMetadata(f"error decoding value length for key '{name}'")
        try:
            vlen = int(sub(i, p))
        except ValueError as e:
            raise InvalidMetadata(f"error decoding value length for key '{name}'") from e
        p += 1
        if p + vlen > n:
            raise InvalidMetadata(f"invalid value length {vlen} for key '{name}'")
        value = sub(p, p + vlen)
        p += vlen
        if p >= n or at(p) != ";":
            raise InvalidMetadata(f"expecting ';' after value for key '{name}'")
        out[name] = value
        offset = p + 1
    for k, v in out.items():
        if isinstance(v, str) and java_length(v) > 5 and "=" in v:
            try:
                out[k] = _blob_metadata(v)
            except InvalidMetadata:
                pass
    return out


def parse(text: str | None) -> dict[str, Value]:
    """`new Metadata(text)`: a map, "v" dropped. Raises InvalidMetadata as Zimbra would."""
    return _parse(text)[0]


def _parse(text: str | None) -> tuple[dict[str, Value], bool]:
    """The map and whether it had the legacy "v" key (which sized Java's HashMap)."""
    if not text:
        return {}, False
    try:
        try:
            value = decode(text)
        except _BadEncoding as e:
            if not e.number:
                raise
            # Bug 87718: UTF-8 that was read as ISO-8859-1 somewhere; Java's conversions
            # replace what they cannot map, so this never fails by itself.
            fixed = text.encode("latin-1", "replace").decode("utf-8", "replace")
            try:
                value = decode(fixed)
            except _BadEncoding:
                raise e from None
    except _BadEncoding as e:
        try:
            value = _blob_metadata(text)
        except InvalidMetadata:
            raise InvalidMetadata(f"invalid metadata: {text!r}") from e
    if not isinstance(value, dict):
        raise InvalidMetadata(f"metadata is not a map: {text!r}")
    had_version = LEGACY_VERSION_KEY in value
    value.pop(LEGACY_VERSION_KEY, None)
    return value, had_version


def parse_or_none(text: str | None) -> dict[str, Value] | None:
    try:
        return parse(text)
    except InvalidMetadata:
        return None


# --------------------------------------------------------------------------------------------
# Printing decoded metadata as Java does


def to_text(v: object) -> str:
    """`toString()` of a value taken out of a Metadata map via `asMap()`: a map becomes a
    Metadata (printed as its encoding, "v" included), a list a MetadataList (its encoding)."""
    if isinstance(v, dict):
        return to_string(v)
    if isinstance(v, list):
        return encode(v)
    return str(v)


def _raw_text(v: object) -> str:
    """toString() of a raw decoded value (a HashMap, ArrayList or Long), used for odd keys."""
    if isinstance(v, dict):
        keys = javahash.hashmap_order(list(v))
        return "{" + ", ".join(f"{k}={_raw_text(v[k])}" for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_raw_text(x) for x in v) + "]"
    return str(v)


def hashmap_keys(decoded: dict[str, Value], *, had_version_key: bool) -> list[str]:
    """Iteration order of the HashMap BEncoding.decode built for a top-level map (with "v" in
    it if the text had one: it counts towards the table size even after Metadata drops it)."""
    keys: list[str] = list(decoded)
    if had_version_key:
        keys.append(LEGACY_VERSION_KEY)
    return [k for k in javahash.hashmap_order(keys) if k != LEGACY_VERSION_KEY]


def custom_text(section: str | None, serialized: str | None) -> str | None:
    """CustomMetadata(section, serialized).toString(), or None where Zimbra's decode fails (the
    op then holds no custom metadata)."""
    if section is None:
        return None
    try:
        meta, had_v = _parse(serialized)
    except InvalidMetadata:
        return None
    # new Metadata(s): BEncoding's HashMap (v counted), then asMap() copies into a default
    # HashMap, then CustomMetadata (a HashMap(8)) takes asMap()'s order.
    first = hashmap_keys(meta, had_version_key=had_v)
    second = javahash.hashmap_order(first)
    order = javahash.hashmap_order(second, capacity=8)
    body = ", ".join(f"{k}={to_text(meta[k])}" for k in order)
    return f"{java_trim(section)}: {{{body}}}"


def java_trim(s: str) -> str:
    """String.trim(): strips characters <= U+0020 at both ends."""
    i, j = 0, len(s)
    while i < j and s[i] <= " ":
        i += 1
    while j > i and s[j - 1] <= " ":
        j -= 1
    return s[i:j]


def as_json(text: str | None) -> object:
    """A metadata string for JSON output: the decoded map, or the text if it does not decode."""
    if text is None:
        return None
    meta = parse_or_none(text)
    return text if meta is None else meta


def canonical(text: str) -> str:
    """`new Metadata(text).toString()`: decoded and encoded again ("v" = 10 added); a string
    that does not decode is returned as it is."""
    meta = parse_or_none(text)
    return text if meta is None else to_string(meta)
