"""java.util.HashMap's iteration order, which Zimbra's redo writer and printer both depend on.

Zimbra serializes several maps (contact fields, SetImapUid's uid map, CopyItem's id map) by
iterating a `HashMap`, and prints decoded ones the same way; to write the bytes Zimbra writes and
print what Zimbra prints we emulate the map (JDK 17, the JVM Zimbra 10 ships):

- keys hash as `String.hashCode` over UTF-16 code units, or `Integer.hashCode` (the value);
  `null` hashes to 0; the table index is `(h ^ (h >>> 16)) & (capacity - 1)`;
- a new entry goes at the tail of its bucket; iteration is bucket by bucket, in chain order;
- the table is created on the first put: 16 buckets, or `tableSizeFor(n)` for `HashMap(n)`, or
  `tableSizeFor(size / 0.75f + 1)` for the copy constructor; it doubles when the size exceeds
  `0.75 * capacity`, and also when a bucket reaches 9 entries while the table has fewer than 64
  buckets; a resize splits each bucket keeping its order;
- removal never shrinks the table.

Invariant: `JavaHashMap.keys()` is the order `HashMap.keySet()` iterates, for every sequence of
`put`/`remove` calls, except in one case this module does not model: a bucket of 9 or more keys
in a table of 64 or more buckets, which Java turns into a red-black tree (it needs that many
colliding hashes; contact field names and item ids never produce it).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_CAPACITY = 16
TREEIFY_THRESHOLD = 8
MIN_TREEIFY_CAPACITY = 64
MAXIMUM_CAPACITY = 1 << 30


def string_hash(s: str) -> int:
    """Java's String.hashCode, as an unsigned 32-bit value."""
    h = 0
    b = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(b), 2):
        h = (31 * h + ((b[i] << 8) | b[i + 1])) & 0xFFFFFFFF
    return h


def key_hash(key: Hashable) -> int:
    """hashCode of a String, Integer (or Long that fits an int) or null key, unsigned."""
    if key is None:
        return 0
    if isinstance(key, str):
        return string_hash(key)
    if isinstance(key, bool):
        return 1231 if key else 1237
    if isinstance(key, int):
        if -(1 << 31) <= key < (1 << 31):
            return key & 0xFFFFFFFF
        return (key ^ (key >> 32)) & 0xFFFFFFFF  # Long.hashCode
    raise TypeError(f"no Java hashCode for {type(key).__name__}")


def spread(h: int) -> int:
    return (h ^ (h >> 16)) & 0xFFFFFFFF


def table_size_for(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1), capped as Java caps it."""
    cap = 1
    while cap < n and cap < MAXIMUM_CAPACITY:
        cap <<= 1
    return cap


class JavaHashMap:
    """A HashMap's table, enough to know its iteration order (values ride along)."""

    __slots__ = ("_table", "_threshold", "size")

    def __init__(self, initial_capacity: int | None = None) -> None:
        """`HashMap()` (None) or `HashMap(initial_capacity)`; the table is made on first put."""
        if initial_capacity is not None and initial_capacity < 0:
            raise ValueError(f"Illegal initial capacity: {initial_capacity}")
        self._table: list[list[list[Any]]] | None = None
        self._threshold = 0 if initial_capacity is None else table_size_for(initial_capacity)
        self.size = 0

    @classmethod
    def copy_of(cls, items: Iterable[tuple[Hashable, object]]) -> JavaHashMap:
        """`new HashMap<>(m)` for a map iterating `items`: pre-sized, then filled in order."""
        pairs = list(items)
        m = cls()
        if pairs:
            ft = len(pairs) / 0.75 + 1.0  # float arithmetic in Java; exact for these sizes
            t = int(ft) if ft < MAXIMUM_CAPACITY else MAXIMUM_CAPACITY
            if t > m._threshold:
                m._threshold = table_size_for(t)
        for k, v in pairs:
            m.put(k, v)
        return m

    @property
    def capacity(self) -> int:
        return len(self._table) if self._table is not None else 0

    def _resize(self) -> None:
        old = self._table
        old_cap = len(old) if old is not None else 0
        old_thr = self._threshold
        new_thr = 0
        if old_cap > 0:
            if old_cap >= MAXIMUM_CAPACITY:
                self._threshold = 0x7FFFFFFF
                return
            new_cap = old_cap << 1
            if new_cap < MAXIMUM_CAPACITY and old_cap >= DEFAULT_CAPACITY:
                new_thr = old_thr << 1
        elif old_thr > 0:
            new_cap = old_thr
        else:
            new_cap, new_thr = DEFAULT_CAPACITY, int(0.75 * DEFAULT_CAPACITY)
        if new_thr == 0:
            new_thr = int(new_cap * 0.75) if new_cap < MAXIMUM_CAPACITY else 0x7FFFFFFF
        table: list[list[list[Any]]] = [[] for _ in range(new_cap)]
        mask = new_cap - 1
        if old is not None:
            # Java splits bucket j into j and j + old_cap keeping each node's order: walking
            # the old table in order and appending gives the same chains.
            for bucket in old:
                for node in bucket:
                    table[node[0] & mask].append(node)
        self._table, self._threshold = table, new_thr

    def put(self, key: Hashable, value: object = None) -> None:
        if self._table is None:
            self._resize()
        assert self._table is not None
        h = spread(key_hash(key))
        bucket = self._table[h & (len(self._table) - 1)]
        for node in bucket:
            if node[0] == h and node[1] == key:
                node[2] = value
                return
        bucket.append([h, key, value])
        if len(bucket) > TREEIFY_THRESHOLD and len(self._table) < MIN_TREEIFY_CAPACITY:
            self._resize()  # treeifyBin on a small table resizes instead
        self.size += 1
        if self.size > self._threshold:
            self._resize()

    def remove(self, key: Hashable) -> None:
        if self._table is None:
            return
        h = spread(key_hash(key))
        bucket = self._table[h & (len(self._table) - 1)]
        for i, node in enumerate(bucket):
            if node[0] == h and node[1] == key:
                del bucket[i]
                self.size -= 1
                return

    def __contains__(self, key: Hashable) -> bool:
        if self._table is None:
            return False
        h = spread(key_hash(key))
        return any(n[0] == h and n[1] == key for n in self._table[h & (len(self._table) - 1)])

    def items(self) -> Iterator[tuple[Any, Any]]:
        for bucket in self._table or ():
            for node in bucket:
                yield node[1], node[2]

    def buckets(self) -> list[list[Any]]:
        """The keys of each bucket, in table order."""
        return [[node[1] for node in b] for b in self._table or ()]

    def keys(self) -> list[Any]:
        return [k for k, _ in self.items()]

    def __len__(self) -> int:
        return self.size


def filled(keys: Iterable[Hashable], initial_capacity: int | None = None) -> JavaHashMap:
    m = JavaHashMap(initial_capacity)
    for k in keys:
        m.put(k)
    return m


def hashmap_order(keys: Iterable[K], *, capacity: int | None = None) -> list[K]:
    """Keys in the order a `HashMap(capacity)` (default: `HashMap()`) filled in this order
    iterates them; duplicates collapse to their first place."""
    return filled(keys, capacity).keys()
