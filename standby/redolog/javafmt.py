"""Java formatting that zmredodump's output depends on: HashMap iteration order and Metadata.

Zimbra prints contact attributes and custom metadata by iterating a `java.util.HashMap`, so to
print them as Zimbra does we emulate its order: String.hashCode over UTF-16 code units, spread
`h ^ (h >>> 16)`, bucket `spread & (cap - 1)`, buckets in index order, insertion order within a
bucket, capacity the smallest power of two (>= the initial one) that holds the entries at load
factor 0.75.

Custom metadata values are Zimbra `Metadata` strings (BEncoding of a sorted map with an extra
"v" key); `custom_metadata_map` decodes one and renders it as Java's `HashMap.toString()`.
"""

from __future__ import annotations


def string_hash(s: str) -> int:
    h = 0
    for unit in _utf16_units(s):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h


def _utf16_units(s: str) -> list[int]:
    b = s.encode("utf-16-be", "surrogatepass")
    return [(b[i] << 8) | b[i + 1] for i in range(0, len(b), 2)]


def _table_for(initial: int) -> int:
    cap = 1
    while cap < max(initial, 1):
        cap <<= 1
    return cap


def hashmap_order(keys: list[str], *, capacity: int = 16) -> list[str]:
    """Keys in the order a HashMap(capacity) filled in `keys` order iterates them."""
    uniq = list(dict.fromkeys(keys))
    cap = _table_for(capacity)
    while len(uniq) > int(cap * 0.75):
        cap <<= 1
    buckets: dict[int, list[str]] = {}
    for k in uniq:
        h = string_hash(k)
        spread = h ^ (h >> 16)
        buckets.setdefault(spread & (cap - 1), []).append(k)
    return [k for i in sorted(buckets) for k in buckets[i]]


def bdecode(s: str) -> object:
    """Decode Zimbra's BEncoding (string lengths count UTF-16 units, like Java)."""
    return _bdec(s, 0)[0]


def _bdec(s: str, pos: int) -> tuple[object, int]:
    c = s[pos]
    if c == "d":
        pos += 1
        d: dict[str, object] = {}
        while s[pos] != "e":
            k, pos = _bdec(s, pos)
            v, pos = _bdec(s, pos)
            d[str(k)] = v
        return d, pos + 1
    if c == "l":
        pos += 1
        lst: list[object] = []
        while s[pos] != "e":
            v, pos = _bdec(s, pos)
            lst.append(v)
        return lst, pos + 1
    if c == "i":
        end = s.index("e", pos)
        return int(s[pos + 1:end]), end + 1
    colon = s.index(":", pos)
    n = int(s[pos:colon])  # a length in UTF-16 code units, as Java counts it
    end = colon + 1
    units = 0
    while units < n:
        units += 2 if ord(s[end]) > 0xFFFF else 1
        end += 1
    return s[colon + 1:end], end


def custom_metadata_map(value: str | None) -> str:
    """Render a serialized Metadata map as Java's HashMap.toString(), without the "v" key."""
    if not value:
        return "{}"
    try:
        decoded = bdecode(value)
    except (ValueError, IndexError):
        return "{}"
    if not isinstance(decoded, dict):
        return "{}"
    # Java's chain: BEncoding fills a HashMap in the string's (sorted) order, "v" included;
    # Metadata drops "v"; asMap() copies into a default HashMap; CustomMetadata into
    # HashMap(8). "v" counts towards the first map's capacity (it matters at 12, 24, ... keys).
    first = [k for k in hashmap_order(list(decoded), capacity=16) if k != "v"]
    decoded.pop("v", None)
    ordered = hashmap_order(first, capacity=16)
    ordered = hashmap_order(ordered, capacity=8)
    return "{" + ", ".join(f"{k}={decoded[k]}" for k in ordered) + "}"


def _java_order(key: object) -> bytes:
    """Java's String.compareTo order (UTF-16 code units), not Python's code point order."""
    return str(key).encode("utf-16-be", "surrogatepass")


def bencode_map(d: dict[str, object]) -> str:
    """Encode a map as Zimbra Metadata (sorted keys, plus "v" = 10)."""
    items = dict(d)
    items["v"] = 10
    return _benc(items)


def _benc(v: object) -> str:
    if isinstance(v, dict):
        return "d" + "".join(_benc(str(k)) + _benc(v[k])
                             for k in sorted(v, key=_java_order)) + "e"
    if isinstance(v, list | tuple):
        return "l" + "".join(_benc(x) for x in v) + "e"
    if isinstance(v, bool):
        return f"i{int(v)}e"
    if isinstance(v, int):
        return f"i{v}e"
    s = str(v)
    return f"{len(s.encode('utf-16-le')) // 2}:{s}"
