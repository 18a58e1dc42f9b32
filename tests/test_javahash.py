"""java.util.HashMap's iteration order, against the JVM itself and a literal simulation.

`data/java_hashmap_orders.json` holds 300 random cases run through JDK 17's HashMap by
`data/JavaHashMapOrders.java` (String and Integer keys, `HashMap()` and `HashMap(n)`, puts and
removes, the copy constructor, and Zimbra's two chains: ParsedContact's request map and parsed
map, and the CustomMetadata chain BEncoding -> Metadata -> asMap -> HashMap(8)). Cases where
Java turns a bucket into a tree (9 colliding keys in 64+ buckets) are left out: the module says
it does not model them.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.redolog import javahash, metadata
from standby.redolog.ops import contact_fields, hashmap_ordered

CASES = json.loads((Path(__file__).parent / "data" / "java_hashmap_orders.json")
                   .read_text(encoding="utf-8"))


def _ours(case: dict) -> list:
    kind, cap, keys = case["kind"], case["capacity"], case["keys"]
    if kind == "str":
        return javahash.hashmap_order(keys, capacity=None if cap < 0 else cap)
    if kind == "int":
        return javahash.hashmap_order([int(k) for k in keys], capacity=None if cap < 0 else cap)
    if kind == "putremove":
        m = javahash.JavaHashMap()
        for k in keys:
            if k[0] == "+":
                m.put(k[1:])
            else:
                m.remove(k[1:])
        return m.keys()
    if kind == "copy":
        return javahash.JavaHashMap.copy_of(javahash.filled(keys).items()).keys()
    if kind == "custom":
        text = metadata.custom_text("s", metadata.encode({k: k for k in keys}))
        assert text is not None
        return [] if text == "s: {}" else [kv.split("=")[0] for kv in text[4:-1].split(", ")]
    assert kind == "contact"
    return [k for k, _ in contact_fields([tuple(kv.split("=", 1)) for kv in keys])]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['kind']}-{len(c['keys'])}")
def test_matches_the_jvm(case: dict) -> None:
    want = [int(k) for k in case["java"]] if case["kind"] == "int" else case["java"]
    assert _ours(case) == want


def test_the_cases_cover_resizes_and_shared_buckets() -> None:
    sizes = {len(c["keys"]) for c in CASES}
    assert {0, 1, 13, 25, 40} <= sizes  # below and above the 12, 24 and 48 thresholds
    assert any(c["kind"] == "str" and c["capacity"] == 17 for c in CASES)  # tableSizeFor(17)
    shared = 0
    for c in CASES:
        if c["kind"] == "str" and len(set(c["keys"])) > 1:
            m = javahash.filled(c["keys"], None if c["capacity"] < 0 else c["capacity"])
            shared += any(len(b) > 1 for b in m.buckets())
    assert shared > 20  # insertion order inside a bucket is exercised


def _simulate(ops: list[tuple[str, str]], initial: int | None) -> list[str]:
    """A literal reading of HashMap.putVal/removeNode/resize/treeifyBin (small tables only)."""
    def spread(k: str) -> int:
        h = javahash.string_hash(k)
        return h ^ (h >> 16)

    table: list[list[str]] | None = None
    threshold = javahash.table_size_for(initial) if initial is not None else 0
    size = 0

    def resize() -> None:
        nonlocal table, threshold
        old, old_cap = table, len(table) if table else 0
        if old_cap:
            new_cap = old_cap * 2
            new_thr = threshold * 2 if old_cap >= 16 else int(new_cap * 0.75)
        elif threshold:
            new_cap, new_thr = threshold, int(threshold * 0.75)
        else:
            new_cap, new_thr = 16, 12
        new: list[list[str]] = [[] for _ in range(new_cap)]
        for j in range(old_cap):
            for k in old[j]:  # noqa: B020 - old is the previous table
                new[j + old_cap if spread(k) & old_cap else j].append(k)
        table, threshold = new, new_thr

    for op, k in ops:
        if op == "-":
            if table is not None:
                b = table[spread(k) & (len(table) - 1)]
                if k in b:
                    b.remove(k)
                    size -= 1
            continue
        if table is None:
            resize()
        assert table is not None
        b = table[spread(k) & (len(table) - 1)]
        if k in b:
            continue
        b.append(k)
        if len(b) > 8 and len(table) < 64:
            resize()
        size += 1
        if size > threshold:
            resize()
    return [k for b in (table or []) for k in b]


# "Aa" and "BB" have one hash code: any word of them collides with every other of its length.
COLLIDING = st.lists(st.sampled_from(["Aa", "BB"]), min_size=3, max_size=3).map("".join)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from("++-"), st.text(max_size=6) | COLLIDING),
                    max_size=40),
       initial=st.none() | st.integers(0, 40))
def test_puts_and_removes_match_a_literal_simulation(ops: list[tuple[str, str]],
                                                     initial: int | None) -> None:
    m = javahash.JavaHashMap(initial)
    for op, k in ops:
        if op == "-":
            m.remove(k)
        else:
            m.put(k)
    assert m.keys() == _simulate(ops, initial)
    assert len(m) == len(m.keys())


def test_nine_colliding_keys_grow_a_small_table() -> None:
    """treeifyBin on a table under 64 buckets resizes it instead (the keys stay a list); the
    orders below are the JVM's."""
    words = ["".join(p) for p in itertools.product(["Aa", "BB"], repeat=4)]  # one hash
    nine = javahash.filled(words[:9])
    assert nine.capacity == 32 and nine.keys() == words[:9]
    ten = javahash.filled([*words[:10], "x", "y"])
    assert ten.capacity == 64 and ten.keys() == [*words[:10], "x", "y"]


def test_int_keys_hash_to_their_value() -> None:
    # 18 -> bucket 2, 1 -> bucket 1, 17 -> bucket 1 after 1: bucket order, then insertion.
    assert javahash.hashmap_order([18, 17, 1]) == [17, 1, 18]
    # -1 spreads to 0xFFFF0000: bucket 0 with 0 and 16, in insertion order (the JVM's).
    assert javahash.hashmap_order([-1, 0, 16]) == [-1, 0, 16]


def test_writer_helpers_order_like_zimbra() -> None:
    assert [k for k, _ in hashmap_ordered([(18, "a"), (17, "b"), (1, "c")])] == [17, 1, 18]
    # The JVM's order for these fields; an empty value and a blank name are dropped, control
    # characters stripped (ParsedContact.init).
    fields = contact_fields([("firstName", "Ann"), ("lastName", "Lee"), ("email", "a@x"),
                             ("fullName", "Ann Lee"), ("company", "Co"), ("nickname", ""),
                             ("  ", "blank name")])
    assert fields == (("firstName", "Ann"), ("lastName", "Lee"), ("fullName", "Ann Lee"),
                      ("company", "Co"), ("email", "a@x"))
    assert contact_fields([("note\x01", "a\x00b\tc")]) == (("note", "ab\tc"),)
