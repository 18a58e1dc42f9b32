"""Tests for standby.store.mime: field extraction from raw messages, against the generator and
against Python's `email` package, plus hand-written edge cases and fuzzing."""

from __future__ import annotations

import base64
import email
import email.policy
import random
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standby.store import mime
from standby.store.messages import MessageFactory, MessageMeta
from standby.store.mime import MessageFields, decode_rfc2047, html_to_text, message_fields

POOL = (
    "alice.smith@example.com",
    "bob@example.org",
    "carol.jones@example.net",
    "Zoë Müller <zoe@example.net>",
    "José García <jose@example.com>",
    '"Smith, John" <john.smith@example.org>',
    "dave.brown@corp.example",
)
BASE_MS = 1_600_000_000_000
B64_RUN = re.compile(r"[A-Za-z0-9+/]{60,}")


def corpus(seed: int, n: int) -> list[tuple[bytes, MessageMeta]]:
    pick = random.Random(seed + 1)
    factory = MessageFactory(random.Random(seed), POOL)
    return [factory.message_with_meta(sender=pick.choice(POOL),
                                      recipients=pick.sample(POOL, pick.randint(1, 4)),
                                      date_ms=BASE_MS + pick.randrange(10**11))
            for _ in range(n)]


@pytest.fixture(scope="module")
def messages() -> list[tuple[bytes, MessageMeta]]:
    return corpus(21, 600)


def norm(text: str) -> str:
    return " ".join(text.split())


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# -- against the generator and the email package ---------------------------------------------

def test_round_trip_headers(messages: list[tuple[bytes, MessageMeta]]) -> None:
    for raw, meta in messages:
        f = message_fields(raw)
        assert f.subject == meta.subject
        assert f.sender == meta.sender
        assert f.recipients == meta.recipients
        assert f.date_ms == meta.date_ms
        assert f.has_attachment == meta.has_attachment


def test_text_has_body_words_and_no_attachment_data(
        messages: list[tuple[bytes, MessageMeta]]) -> None:
    rng = random.Random(0)
    for raw, meta in messages:
        f = message_fields(raw)
        assert norm(meta.body_text) in norm(f.text)
        words = re.findall(r"[A-Za-z]{4,}", meta.body_text)
        for w in rng.sample(words, min(5, len(words))):
            assert w in f.text
        assert not B64_RUN.search(f.text)
        if meta.has_attachment:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            for part in msg.walk():
                if part.is_attachment():
                    payload = part.get_payload()
                    assert isinstance(payload, str)
                    for line in payload.splitlines()[:3]:
                        assert line not in f.text


def test_cross_check_with_email_package(messages: list[tuple[bytes, MessageMeta]]) -> None:
    for raw, _meta in messages[:300]:
        f = message_fields(raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert f.subject == str(msg["subject"])
        assert f.sender == str(msg["from"])
        to = str(msg["to"])
        assert f.recipients == (f"{to}, {msg['cc']}" if msg["cc"] else to)
        assert f.date_ms == int(msg["date"].datetime.timestamp() * 1000)
        assert f.has_attachment == any(p.is_attachment() for p in msg.walk())
        body = msg.get_body(preferencelist=("plain",))
        if body is not None:
            assert norm(body.get_content()) in norm(f.text)
        else:  # html only: every word of the email package's html-to-text is ours too
            html = msg.get_body(preferencelist=("html",))
            assert html is not None
            assert norm(html_to_text(html.get_content())) == norm(f.text)


def test_lf_only_same_as_crlf(messages: list[tuple[bytes, MessageMeta]]) -> None:
    for raw, _ in messages[:300]:
        assert message_fields(raw.replace(b"\r\n", b"\n")) == message_fields(raw)


def test_deterministic(messages: list[tuple[bytes, MessageMeta]]) -> None:
    for raw, _ in messages[:50]:
        assert message_fields(raw) == message_fields(bytes(raw))


def test_attachments_are_not_decoded(messages: list[tuple[bytes, MessageMeta]],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    real = mime._b64decode

    def spy(body: bytes) -> bytes:
        decoded.append(len(body))
        return real(body)

    monkeypatch.setattr(mime, "_b64decode", spy)
    big = [raw for raw, meta in messages if meta.has_attachment and len(raw) > 100_000]
    assert big
    for raw in big:
        decoded.clear()
        assert message_fields(raw).has_attachment
        assert all(n < 60_000 for n in decoded)  # only (small) base64 text parts, if any


def test_large_message_is_fast() -> None:
    body = base64.encodebytes(random.Random(1).randbytes(300_000)).replace(b"\n", b"\r\n")
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n"
           b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n--XYZ\r\n'
           b"Content-Type: text/plain\r\n\r\nsee attached\r\n--XYZ\r\n"
           b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + body + b"--XYZ--\r\n")
    f = message_fields(raw)
    assert f.text == "see attached" and f.has_attachment


# -- never raises ----------------------------------------------------------------------------

def _check(fields: MessageFields, max_text: int = 65536) -> None:
    assert isinstance(fields, MessageFields)
    for name in ("subject", "sender", "recipients", "text"):
        assert isinstance(getattr(fields, name), str)
    assert fields.date_ms is None or isinstance(fields.date_ms, int)
    assert isinstance(fields.has_attachment, bool)
    assert len(fields.text) <= max_text
    fields.text.encode("utf-8")  # storable in SQLite: no lone surrogates
    fields.subject.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _check(message_fields(raw))


_FRAGMENTS = [
    b"\r\n", b"\n", b"\r\n\r\n", b"--", b"=?utf-8?b?", b"?=", b"=?x?q?=FF?=",
    b"Content-Type: multipart/mixed; boundary=", b"Content-Type: text/html\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"<script>", b"<!--", b"=\r\n", b"=F", b"\xff\xfe",
    b"\x00", b'boundary=""', b"Date: 99 Foo 99999 99:99:99 +9999\r\n", b"charset=utf-7",
    b"charset=base64", b"charset=\x00", b"Content-Disposition: attachment\r\n",
]


@st.composite
def mutated(draw: st.DrawFn, corpus_: list[bytes]) -> bytes:
    raw = bytearray(draw(st.sampled_from(corpus_)))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(raw)))
        op = draw(st.integers(0, 3))
        if op == 0:
            del raw[pos:pos + draw(st.integers(1, 200))]
        elif op == 1:
            raw[pos:pos] = draw(st.sampled_from(_FRAGMENTS))
        elif op == 2:
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        else:
            raw = raw[:pos]
    return bytes(raw)


_SMALL = [raw for raw, _ in corpus(99, 60) if len(raw) < 20_000]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(_SMALL), st.sampled_from([0, 10, 65536]))
def test_mutated_messages_never_raise(raw: bytes, max_text: int) -> None:
    _check(message_fields(raw, max_text=max_text), max_text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_decode_rfc2047_never_raises(value: str) -> None:
    assert isinstance(decode_rfc2047(value), str)
    assert isinstance(html_to_text(value), str)


# -- RFC 2047 --------------------------------------------------------------------------------

@pytest.mark.parametrize(("encoded", "decoded"), [
    ("=?utf-8?B?w6lsw6h2ZQ==?=", "élève"),
    ("=?UTF-8?b?w6lsw6h2ZQ?=", "élève"),  # missing padding
    ("=?iso-8859-1?Q?Caf=E9_cr=E8me?=", "Café crème"),
    ("=?utf-8?q?Caf=C3=A9?= au lait", "Café au lait"),
    ("Re: =?utf-8?q?Caf=C3=A9?=", "Re: Café"),
    ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between encoded-words dropped
    ("=?utf-8?q?a?=\r\n\t=?utf-8?q?b?=", "ab"),
    ("=?utf-8?q?a_?= =?utf-8?q?b?=", "a b"),
    ("=?utf-8?B?5pel?= =?utf-8?B?5pys?=", "日本"),
    ("=?utf-8?B?5pc=?= =?utf-8?B?pQ==?=", "日"),  # a character split across two words
    ("=?utf-8?q?=E6=97?=\r\n =?utf-8?q?=A5!?=", "日!"),
    ("=?utf-8*en?q?hello?=", "hello"),  # RFC 2231 language suffix
    ("=?koi8-r?B?8NLJ18XU?=", "Привет"),
    ("=?x-unknown?q?abc?= tail", "=?x-unknown?q?abc?= tail"),  # unknown charset: kept raw
    ("=?utf-8?b?!!!?= x", "=?utf-8?b?!!!?= x"),  # bad base64: kept raw
    ("=?us-ascii?q?=FF?=", "=?us-ascii?q?=FF?="),  # undecodable bytes: kept raw
    ("=?utf-8?q?ok?= =?x-unknown?q?z?= =?utf-8?q?ok?=", "ok =?x-unknown?q?z?= ok"),
    ("=?utf-8?q?a?= =?iso-8859-1?q?b?=", "ab"),
    ("plain text, no words", "plain text, no words"),
    ("a =?broken", "a =?broken"),
])
def test_decode_rfc2047(encoded: str, decoded: str) -> None:
    assert decode_rfc2047(encoded) == decoded


def test_encoded_headers_unfolded_and_case_insensitive() -> None:
    raw = crlf("SUBJECT: =?utf-8?q?Caf=C3=A9?=\n =?utf-8?q?_au_lait?= and\n\tmore\n"
               "from: =?iso-8859-1?q?Zo=EB?= <zoe@example.net>\n"
               "TO: a@example.com,\n b@example.com\nCc: =?utf-8?b?w6k=?= <c@example.com>\n"
               "Subject: second subject is ignored\n\nbody\n")
    f = message_fields(raw)
    assert f.subject == "Café au lait and\tmore"
    assert f.sender == "Zoë <zoe@example.net>"
    assert f.recipients == "a@example.com, b@example.com, é <c@example.com>"
    assert f.text == "body"


# -- bodies ----------------------------------------------------------------------------------

def test_lf_only_simple() -> None:
    raw = (b"From: a@example.com\nTo: b@example.com\nSubject: hi\n"
           b"Date: Tue, 14 Nov 2023 22:13:20 +0000\n\nHello\nWorld\n")
    f = message_fields(raw)
    assert (f.subject, f.sender, f.recipients) == ("hi", "a@example.com", "b@example.com")
    assert f.text == "Hello\nWorld"
    assert f.date_ms == 1_700_000_000_000 and not f.has_attachment


NESTED = """From: a@example.com
To: b@example.com
Subject: nested
Content-Type: multipart/mixed; boundary="outer"

This is a multi-part message in MIME format.
--outer
Content-Type: multipart/alternative; boundary="outer-alt"

--outer-alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Plain caf=C3=A9 text with a soft=
 break
--outer-alt
Content-Type: multipart/related; boundary=rel

--rel
Content-Type: text/html; charset=utf-8

<p>HTML twin <b>text</b></p>
--rel
Content-Type: image/png
Content-Disposition: inline
Content-Transfer-Encoding: base64

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA
--rel--
--outer-alt--
--outer
Content-Type: application/pdf; name="r.pdf"
Content-Disposition: attachment; filename="r.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PC9UeXBlL0NhdGFsb2cvUGFnZXMgMiAwIFI+PgplbmRvYmoK
--outer
Content-Type: text/plain
Content-Disposition: attachment; filename="notes.txt"

attached notes are not indexed
--outer--
epilogue is not indexed
"""


def test_nested_multipart() -> None:
    for raw in (crlf(NESTED), NESTED.encode()):
        f = message_fields(raw)
        assert f.text == "Plain café text with a soft break"
        assert f.has_attachment
        assert f.subject == "nested"


def test_html_used_when_level_has_no_plain() -> None:
    no_plain = crlf(NESTED.replace("--outer-alt\nContent-Type: text/plain",
                                   "--outer-alt\nContent-Type: image/gif"))
    assert message_fields(no_plain).text == "HTML twin text"
    mixed = crlf("""Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/html

<div>Only &amp; html&nbsp;here</div>
--b
Content-Type: image/jpeg

xx
--b--
""")
    f = message_fields(mixed)
    assert f.text == "Only & html here" and f.has_attachment


def test_html_only_body() -> None:
    raw = crlf("""Subject: h
Content-Type: text/html; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

<html><head><title>T</title><style>p {color: red}</style>
<script>var x = "<p>no</p>";</script></head>
<body><!-- hidden comment --><p>Caf=E9 &lt;menu&gt; &amp; more</p>
<p>Line<br>break &#8364; 5 &lt; 6</p>
<table><tr><td>cell one</td><td>cell two</td></tr></table></body></html>
""")
    f = message_fields(raw)
    for hidden in ("color", "var x", "hidden"):
        assert hidden not in f.text
    assert "no" not in f.text.split()
    assert "Café <menu> & more" in f.text
    assert "Line\nbreak € 5 < 6" in f.text
    assert "cell one\ncell two" in f.text
    assert f.text.split("\n")[0].strip() == "T"  # the title is kept; styles and scripts are not
    assert not f.has_attachment


def test_html_to_text_unclosed_constructs() -> None:
    # Unclosed tags, comments and scripts must not swallow the parser (or the text after them).
    out = html_to_text("<a " * 5_000 + "<!--" * 2_000 + "<script>" * 2_000 + "text")
    assert isinstance(out, str)


@pytest.mark.parametrize(("headers", "body", "text"), [
    ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
     base64.b64encode("Grüße aus München".encode()).decode(), "Grüße aus München"),
    ("Content-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: Quoted-Printable",
     "Gr=FC=DFe=\n aus M=FCnchen", "Grüße aus München"),
    ("Content-Transfer-Encoding: 8bit", "Grüße aus München", "Grüße aus München"),  # no charset
    ("Content-Type: text/plain; charset=x-no-such", "caf\u00e9", "café"),
    ("Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: quoted-printable",
     "=80 10", "€ 10"),
    ("Content-Transfer-Encoding: base64", "aGVsbG8gd29ybGQ=!!%%", "hello world"),  # junk ignored
    ("Content-Transfer-Encoding: base64", "aGVsbG8gd29ybGQ", "hello world"),  # padding missing
    ("Content-Type: garbage", "still text", "still text"),
])
def test_single_part_encodings(headers: str, body: str, text: str) -> None:
    raw = crlf(f"Subject: s\n{headers}\n\n{body}\n")
    assert message_fields(raw).text == text


def test_slow_codecs_are_refused() -> None:
    raw = b"Content-Type: text/plain; charset=punycode\r\n\r\na-" + b"99999" * 60_000
    f = message_fields(raw)  # decoded as UTF-8 instead of by the pure-Python codec
    assert f.text.startswith("a-9999")
    assert decode_rfc2047("=?idna?q?abc?=") == "=?idna?q?abc?="


def test_text_attachment_is_skipped() -> None:
    raw = crlf("Content-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\n"
               "secret\n")
    f = message_fields(raw)
    assert f.text == "" and f.has_attachment
    pdf = crlf("Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0x\n")
    assert message_fields(pdf) == MessageFields("", "", "", None, "", True)


@pytest.mark.parametrize(("body", "ctype", "text"), [
    ("--b\nContent-Type: text/plain\n\nno close delimiter\n", "multipart/mixed; boundary=b",
     "no close delimiter"),
    ("--guess\nContent-Type: text/plain\n\nguessed\n--guess--\n", "multipart/mixed", "guessed"),
    ("--real\n\nwrong boundary param\n--real--\n", 'multipart/mixed; boundary="other"',
     "wrong boundary param"),
    ("--b\n\npart without headers\n--b--\n", "multipart/mixed; boundary=b", "part without headers"),
    ("--bb\nContent-Type: text/plain\n\nlonger boundary is not ours\n--b\n\nmine\n--b--\n",
     "multipart/mixed; boundary=b", "mine"),
    ("preamble only, no delimiters\n", "multipart/mixed; boundary=b", ""),
    ("--b\nContent-Type: text/plain\n\none\n--b\nContent-Type: text/plain\n\ntwo\n--b--\n",
     "multipart/mixed; boundary=b", "one\ntwo"),
])
def test_broken_and_odd_multiparts(body: str, ctype: str, text: str) -> None:
    raw = crlf(f"Subject: m\nContent-Type: {ctype}\n\n{body}")
    assert message_fields(raw).text == text


def test_deep_nesting_is_bounded() -> None:
    depth = 200
    parts = "".join(f"--b{i}\nContent-Type: multipart/mixed; boundary=b{i + 1}\n\n"
                    for i in range(depth))
    raw = crlf(f"Content-Type: multipart/mixed; boundary=b0\n\n{parts}--b{depth}\n\ndeep text\n")
    _check(message_fields(raw))


@pytest.mark.parametrize(("value", "expected"), [
    ("Tue, 14 Nov 2023 22:13:20 GMT", 1_700_000_000_000),
    ("Tue, 14 Nov 2023 23:13:20 +0100", 1_700_000_000_000),
    ("14 Nov 2023 17:13:20 -0500 (EST)", 1_700_000_000_000),
    ("Tue, 14 Nov 2023 22:13:20 -0000", 1_700_000_000_000),
    ("Tue, 14 Nov 2023 14:13:20 PST", 1_700_000_000_000),
    ("Tue, 14 Nov 23 22:13:20 GMT", 1_700_000_000_000),
    ("Tue, 14 Nov 2023 22:13 GMT", 1_700_000_000_000 - 20_000),
    ("not a date", None),
    ("Tue, 31 Feb 2023 22:13:20 GMT", None),
    ("", None),
])
def test_dates(value: str, expected: int | None) -> None:
    assert message_fields(crlf(f"Date: {value}\nSubject: d\n\nx\n")).date_ms == expected


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
       st.integers(-14 * 60, 14 * 60))
def test_dates_agree_with_email_utils(when: datetime, offset_min: int) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    value = format_datetime(when.replace(microsecond=0, tzinfo=tz))
    expected = int(parsedate_to_datetime(value).timestamp()) * 1000
    assert message_fields(crlf(f"Date: {value}\n\nx\n")).date_ms == expected


def test_missing_headers_and_empty_input() -> None:
    assert message_fields(b"") == MessageFields("", "", "", None, "", False)
    assert message_fields(b"\r\nbody only\r\n").text == "body only"
    f = message_fields(b"Subject: headers only\r\nFrom: x@example.com")
    assert (f.subject, f.sender, f.text) == ("headers only", "x@example.com", "")
    assert message_fields(b"\xff\xfe garbage \x00\x01").date_ms is None


def test_latin1_raw_header_bytes() -> None:
    f = message_fields(b"Subject: caf\xe9\r\nFrom: \xc3\xa9 <e@example.com>\r\n\r\nx")
    assert f.subject == "caf\xe9"  # not UTF-8: the header block is read as latin-1
    g = message_fields(b"Subject: caf\xc3\xa9\r\n\r\nx")
    assert g.subject == "café"


def test_max_text_truncates() -> None:
    raw = crlf("Subject: t\n\n" + "word " * 20_000)
    assert len(message_fields(raw).text) == 65536
    assert message_fields(raw, max_text=100).text == ("word " * 20)[:100]
    assert message_fields(raw, max_text=0).text == ""
