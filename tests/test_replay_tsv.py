"""The C row formatter (`standby.replay._ctsv`, built by `pip install`) gives exactly the bytes
of the pure-Python reference `bulk.tsv`, for every kind of value a row can hold."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.replay import bulk


class Kind(enum.IntEnum):
    A = 5


class Text(str):
    pass


values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
    st.text(), st.text(alphabet="\\\t\n\r\0ab\u00e9\U0001f600", max_size=30),
    st.floats(allow_nan=False), st.just(Kind.A), st.builds(Text, st.text(max_size=10)),
)
rows = st.lists(st.lists(values, max_size=8).map(tuple) | st.lists(values, max_size=8),
                max_size=20)


def test_the_extension_is_built() -> None:
    assert bulk.TSV_ENGINE == "c", "pip install builds standby/replay/_ctsv.c (gcc needed)"


@settings(max_examples=500, deadline=None)
@given(rows)
def test_c_equals_the_reference(rs: list[tuple[object, ...]]) -> None:
    assert bulk.tsv_bytes(rs) == bulk.tsv(rs).encode("utf-8")


def test_errors_are_the_same() -> None:
    bad = [("\ud800",)]  # a lone surrogate cannot be UTF-8
    with pytest.raises(UnicodeEncodeError):
        bulk.tsv(bad).encode("utf-8")
    with pytest.raises(UnicodeEncodeError):
        bulk.tsv_bytes(bad)
    not_a_row: list[Any] = [5]
    with pytest.raises(TypeError):
        bulk.tsv_bytes(not_a_row)
