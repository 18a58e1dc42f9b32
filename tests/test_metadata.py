"""Zimbra's Metadata encoding: Hypothesis round trips and the Java behaviours it must keep."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.redolog import metadata as md

SCALARS = st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
MAPS = st.dictionaries(st.text(max_size=8).filter(lambda k: k != "v"), VALUES, max_size=6)


@settings(max_examples=500, deadline=None)
@given(value=VALUES)
def test_values_round_trip(value: object) -> None:
    text = md.encode(value)
    assert md.decode(text) == value
    assert md.encode(md.decode(text)) == text


@settings(max_examples=300, deadline=None)
@given(meta=MAPS)
def test_metadata_strings_round_trip(meta: dict[str, object]) -> None:
    """Metadata.toString() adds "v" = 10; new Metadata(text) drops it again."""
    text = md.to_string(meta)
    assert md.decode(text) == {**meta, "v": 10}
    assert md.parse(text) == meta
    assert md.canonical(text) == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=30))
def test_any_text_parses_or_is_refused_as_zimbra_does(text: str) -> None:
    try:
        parsed = md.parse(text)
    except md.InvalidMetadata:
        return
    assert isinstance(parsed, dict) and "v" not in parsed


def test_lengths_and_order_count_utf16_units() -> None:
    # U+1F600 is two UTF-16 units (D83D DE00) and sorts before U+FFFF, as in Java.
    assert md.to_string({"\uffff": 1, "😀": "😀é"}) == "d1:vi10e2:😀3:😀é1:\uffffi1ee"
    assert md.decode("2:😀") == "😀"
    # A length that splits the pair takes one half, as Java's String(char[], off, len) does,
    # which leaves the other half over; a lone half itself round-trips.
    with pytest.raises(ValueError):
        md.decode("1:😀")
    assert md.decode(md.encode("\ud83d")) == "\ud83d"


def test_java_scalars() -> None:
    assert md.encode({"b": True, "n": None, "i": -5}) == "d1:b4:true1:ii-5ee"
    with pytest.raises(ValueError):
        md.encode(2**63)
    with pytest.raises(TypeError):
        md.encode(1.5)
    assert md.decode("i+7e") == 7  # Long.parseLong takes a sign


def test_fallbacks_of_new_metadata() -> None:
    # UTF-8 read as ISO-8859-1 (bug 87718): the lengths no longer match; undone and reread.
    assert md.parse("d1:a1:Ã©1:bi5ee") == {"a": "é", "b": 5}
    # The legacy BlobMetaData form, values that look encoded decoded again.
    assert md.parse("a=1:x;b=2:yz;") == {"a": "x", "b": "yz"}
    assert md.parse("c=12:k=1:v;m=1:w;;") == {"c": {"k": "v", "m": "w"}}
    # Text with no "=" is an empty BlobMetaData map; a broken one is refused.
    assert md.parse("garbage") == {}
    with pytest.raises(md.InvalidMetadata):
        md.parse("a=5:x;")
    with pytest.raises(md.InvalidMetadata):
        md.parse("li1ee")  # not a map
    assert md.parse("") == {} and md.parse(None) == {}


def test_custom_metadata_text() -> None:
    """CustomMetadata.toString(): the trimmed section, then its values as Java prints them
    (a nested map as a Metadata: its encoding with "v"; a list as its encoding)."""
    text = md.to_string({"m": {"x": 1}, "l": [1, "a"], "s": "str", "n": 3})
    assert md.custom_text(" sec\t", text) == "sec: {s=str, l=li1e1:ae, m=d1:vi10e1:xi1ee, n=3}"
    assert md.custom_text("sec", "") == "sec: {}"
    assert md.custom_text(None, text) is None
    assert md.custom_text("sec", "a=5:x;") is None  # Zimbra's decode fails: no custom data
