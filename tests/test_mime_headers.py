"""`message_headers` (what a database row needs, no body text decoded) gives exactly
`message_fields`' subject, sender, recipients and attachment flag: on the generator's messages,
on mutated ones, on crafted MIME trees and on arbitrary bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standby.store.mime import MessageHeaders, message_fields, message_headers
from tests.test_mime import corpus, crlf, mutated


def _projection(raw: bytes) -> MessageHeaders:
    f = message_fields(raw)
    return MessageHeaders(f.subject, f.sender, f.recipients, f.has_attachment)


def test_generated_messages() -> None:
    raws = [raw for raw, _ in corpus(5, 400)]
    assert any(_projection(r).has_attachment for r in raws)
    assert any(not _projection(r).has_attachment for r in raws)
    for raw in raws:
        assert message_headers(raw) == _projection(raw)


_SMALL = [raw for raw, _ in corpus(98, 60) if len(raw) < 20_000]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(_SMALL))
def test_mutated_messages(raw: bytes) -> None:
    assert message_headers(raw) == _projection(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw: bytes) -> None:
    assert message_headers(raw) == _projection(raw)


_LEAVES = [
    "Content-Type: text/plain\n\nplain words\n",
    "Content-Type: text/html\n\n<p>html words</p>\n",
    "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n",
    "Content-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nattached\n",
    "Content-Type: image/png\n\n\x89PNG\n",
    "\nno headers at all\n",
]


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> str:
    """A MIME entity (headers and body) of nested multiparts over the leaves above."""
    if depth >= 3 or draw(st.booleans()):
        return draw(st.sampled_from(_LEAVES))
    kind = draw(st.sampled_from(["mixed", "alternative", "related"]))
    b = f"b{depth}x{draw(st.integers(0, 99))}"
    children = draw(st.lists(trees(depth + 1), min_size=0, max_size=4))
    body = "".join(f"--{b}\n{c}" for c in children)
    close = draw(st.booleans())
    return f"Content-Type: multipart/{kind}; boundary={b}\n\npreamble\n{body}" + (
        f"--{b}--\n" if close else "")


@settings(max_examples=300, deadline=None)
@given(trees())
def test_crafted_trees(entity: str) -> None:
    raw = crlf("Subject: s\nFrom: a@example.com\nTo: b@example.com\n" + entity)
    assert message_headers(raw) == _projection(raw)
