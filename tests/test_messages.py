"""Tests for standby.store.messages: determinism, message shape, size distribution, contacts."""

from __future__ import annotations

import email
import email.policy
import random
import re
import statistics
from email.utils import parsedate_to_datetime

import pytest

from standby.store.messages import MessageFactory, MessageMeta

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


def corpus(seed: int, n: int) -> list[tuple[bytes, MessageMeta]]:
    """`n` messages from a factory seeded with `seed`, with varied senders and recipients."""
    pick = random.Random(seed + 1)
    factory = MessageFactory(random.Random(seed), POOL)
    out = []
    for _ in range(n):
        sender = pick.choice(POOL)
        recipients = pick.sample(POOL, pick.randint(1, 4))
        date_ms = BASE_MS + pick.randrange(10**11)
        out.append(factory.message_with_meta(sender=sender, recipients=recipients, date_ms=date_ms))
    return out


@pytest.fixture(scope="module")
def messages() -> list[tuple[bytes, MessageMeta]]:
    return corpus(11, 2000)


def test_same_seed_same_output() -> None:
    a, b = corpus(5, 200), corpus(5, 200)
    assert a == b
    assert [raw for raw, _ in corpus(6, 200)] != [raw for raw, _ in a]


def test_message_matches_message_with_meta() -> None:
    f1, f2 = MessageFactory(random.Random(3)), MessageFactory(random.Random(3))
    for i in range(50):
        kw = {"sender": "alice.smith@example.com", "recipients": ["bob@example.org"],
              "date_ms": BASE_MS + i}
        assert f1.message(**kw) == f2.message_with_meta(**kw)[0]  # type: ignore[arg-type]


def test_global_random_untouched() -> None:
    random.seed(1234)
    state = random.getstate()
    corpus(7, 50)
    MessageFactory(random.Random(1)).contact_vcard()
    assert random.getstate() == state


def test_crlf_ascii_headers_and_line_lengths(messages: list[tuple[bytes, MessageMeta]]) -> None:
    for raw, _ in messages[:500]:
        assert raw.count(b"\n") == raw.count(b"\r\n"), "bare LF"
        assert b"\r\r" not in raw
        head, sep, _body = raw.partition(b"\r\n\r\n")
        assert sep
        head.decode("ascii")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        head_lines = head.split(b"\r\n")
        assert max(len(line) for line in head_lines) <= 78 + 10  # an encoded-word may overrun
        names = {ln.split(b":", 1)[0].lower() for ln in head_lines if ln[:1] not in (b" ", b"\t")}
        for required in (b"date", b"from", b"to", b"subject", b"message-id", b"mime-version",
                         b"content-type"):
            assert required in names


def test_date_header_is_gmt_rfc2822(messages: list[tuple[bytes, MessageMeta]]) -> None:
    for raw, meta in messages[:200]:
        line = re.search(rb"^Date: (.*)\r$", raw, re.MULTILINE)
        assert line is not None
        value = line.group(1).decode()
        assert value.endswith(" GMT")
        assert int(parsedate_to_datetime(value).timestamp() * 1000) == meta.date_ms
        assert meta.date_ms % 1000 == 0


def test_size_distribution(messages: list[tuple[bytes, MessageMeta]]) -> None:
    sizes = [len(raw) for raw, _ in messages]
    median, mean = statistics.median(sizes), statistics.mean(sizes)
    assert 4_000 <= median <= 10_000, median
    assert 12_000 <= mean <= 45_000, mean
    assert min(sizes) >= 700
    with_att = [meta for _, meta in messages if meta.has_attachment]
    assert 0.10 <= len(with_att) / len(messages) <= 0.20
    for meta in with_att:
        assert 1 <= len(meta.attachments) <= 2
        for _name, _ctype, size in meta.attachments:
            assert 10_000 <= size <= 300_000
    text_only = [len(raw) for raw, meta in messages if not meta.has_attachment]
    assert max(text_only) < 64_000
    # heavy tail: some attachments are much bigger than the typical one
    att_sizes = sorted(s for meta in with_att for _, _, s in meta.attachments)
    assert att_sizes[-1] >= 5 * att_sizes[len(att_sizes) // 2]


def test_variety(messages: list[tuple[bytes, MessageMeta]]) -> None:
    raws = [raw for raw, _ in messages[:1000]]
    def count(pattern: bytes) -> int:
        return sum(1 for raw in raws if re.search(pattern, raw, re.IGNORECASE | re.MULTILINE))
    assert count(rb"^Subject:.*=\?[^?]+\?b\?") > 5
    assert count(rb"^Subject:.*=\?[^?]+\?q\?") > 5
    assert count(rb"^Content-Type: multipart/alternative") > 200
    assert count(rb"^Content-Type: multipart/mixed") > 80
    assert count(rb"^Content-Type: text/html") > 30  # html-only bodies
    assert count(rb"^Content-Transfer-Encoding: quoted-printable") > 100
    assert count(rb"^Content-Transfer-Encoding: 8bit") > 10
    assert count(rb"charset=iso-8859-1") > 10
    assert count(rb"^Cc: ") > 100
    assert count(rb"^In-Reply-To: ") > 50
    assert count(rb"application/pdf") > 20 and count(rb"image/jpeg") > 10
    assert sum(1 for _, meta in messages[:1000] if not meta.subject.isascii()) > 50


def test_parses_cleanly_with_email_package(messages: list[tuple[bytes, MessageMeta]]) -> None:
    for raw, meta in messages[:300]:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in msg.walk():
            assert not part.defects, (part.defects, raw[:2000])
        assert str(msg["subject"]) == meta.subject
        assert str(msg["from"]) == meta.sender
        assert str(msg["to"]) == meta.to
        assert str(msg.get("cc", "")) == meta.cc
        assert str(msg["message-id"]) == meta.message_id
        found = [(p.get_filename(), p.get_content_type(), len(p.get_content()))
                 for p in msg.walk() if p.is_attachment()]
        assert tuple(found) == meta.attachments
        body = msg.get_body(preferencelist=("plain", "html"))
        assert body is not None
        assert body.get_content_type() == ("text/html" if meta.html_only else "text/plain")
        if not meta.html_only:
            assert body.get_content().replace("\r\n", "\n").strip() == meta.body_text.strip()


def test_attachment_payload_looks_like_its_type(messages: list[tuple[bytes, MessageMeta]]) -> None:
    magic = {"application/pdf": b"%PDF-", "image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG"}
    seen = 0
    for raw, meta in messages:
        if not meta.has_attachment:
            continue
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in msg.walk():
            if part.is_attachment() and part.get_content_type() in magic:
                assert part.get_content().startswith(magic[part.get_content_type()])
                seen += 1
        if seen > 20:
            break
    assert seen > 20


def test_body_is_plausible_prose(messages: list[tuple[bytes, MessageMeta]]) -> None:
    words = re.findall(r"[A-Za-z]+", " ".join(meta.body_text for _, meta in messages[:200]))
    assert len({w.lower() for w in words}) > 300
    common = {"the", "and", "meeting", "project", "please", "thanks"}
    assert common <= {w.lower() for w in words}


def test_words() -> None:
    factory = MessageFactory(random.Random(2))
    for n in (1, 2, 3, 5):
        w = factory.words(n)
        assert len(w.split(" ")) == n
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", w)
    assert MessageFactory(random.Random(9)).words(3) == MessageFactory(random.Random(9)).words(3)


def test_contact_vcard() -> None:
    factory = MessageFactory(random.Random(4))
    for _ in range(100):
        fields, card = factory.contact_vcard()
        for key in ("firstName", "lastName", "fullName", "email", "company", "workPhone",
                    "mobilePhone"):
            assert fields[key]
        assert fields["fullName"] == f"{fields['firstName']} {fields['lastName']}"
        assert re.fullmatch(r"[a-z0-9.]+@[a-z0-9.]+", fields["email"])
        text = card.decode("utf-8")
        assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
        lines = text.split("\r\n")[:-1]
        assert lines[0] == "BEGIN:VCARD" and lines[1] == "VERSION:3.0" and lines[-1] == "END:VCARD"
        assert f"FN:{fields['fullName']}" in lines
        assert f"N:{fields['lastName']};{fields['firstName']};;;" in lines
        assert f"EMAIL;TYPE=INTERNET:{fields['email']}" in lines
        if "notes" in fields:
            note = next(ln for ln in lines if ln.startswith("NOTE:"))
            assert note[5:].replace("\\,", ",").replace("\\;", ";") == fields["notes"]


def test_contact_vcard_full_name_and_determinism() -> None:
    fields, card = MessageFactory(random.Random(5)).contact_vcard(full_name="Ada Lovelace")
    assert (fields["firstName"], fields["lastName"]) == ("Ada", "Lovelace")
    assert fields["fullName"] == "Ada Lovelace"
    assert fields["email"].startswith("ada.lovelace@")
    assert b"FN:Ada Lovelace\r\n" in card
    single, _ = MessageFactory(random.Random(5)).contact_vcard(full_name="Cher")
    assert single["firstName"] == "Cher" and single["fullName"] == "Cher"
    again = MessageFactory(random.Random(8)).contact_vcard()
    assert MessageFactory(random.Random(8)).contact_vcard() == again
