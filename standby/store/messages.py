"""Deterministic generator of realistic RFC 5322 / MIME email messages, contacts and short names.

This module owns the *content* the load generator feeds to the reference mailbox store: message
blobs (headers, text / HTML bodies, base64 attachments), vCard contacts, and short word strings
for folder and tag names. Everything is drawn from the `random.Random` the caller passes in, so a
seed fixes the output byte for byte; the module keeps no global mutable state.

Shape of the traffic (measured over 10,000 messages: median ~7 KiB, mean ~24 KiB):
- ~85% text only, 1-20 KB: text/plain (7bit, quoted-printable, 8bit or base64, sometimes with
  non-ASCII words), multipart/alternative (text + HTML), or a bare text/html body;
- ~15% multipart/mixed with one or two base64 attachments (PDF, JPEG, Office documents, ...),
  10-300 KB each, Pareto-distributed (heavy tail), payload bytes from `rng.randbytes`.
Subjects and display names sometimes carry non-ASCII words as RFC 2047 encoded-words. Body text
is made of a Zipf-weighted vocabulary of common English words plus names and business terms, so
full-text search over it behaves like search over real mail.

Messages are assembled directly as bytes (no `email` package) with CRLF line endings, fast
enough for a load generator: 10,000 messages take about 2 s on one core.
"""

from __future__ import annotations

import binascii
import html
import random
import re
import sys
import unicodedata
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from itertools import accumulate
from operator import itemgetter


def _split_words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_COMMON = _split_words("""
the of and to a in is that for it as with was on be by this are from at or have an will not but
we they you all can has more one their there which about would if your our been also when so out
up what new time were some only other its into may any these than them other just could first
two like people over after most then back well work good make very need much year because should
know week now day next team help get here still see take want while last thanks please call
meeting project report update review plan budget client customer email office today tomorrow
morning afternoon monday tuesday wednesday thursday friday schedule agenda notes draft final
version document attached file link access account system server data issue problem question
answer change request approval deadline quarter month progress status result sales market
product service support contract price order invoice payment delivery shipping launch release
feature design test build deploy network security policy process quality training hiring
interview candidate offer salary benefits vacation holiday travel flight hotel conference
presentation slides feedback comments discussion decision agreement proposal estimate forecast
revenue cost expense target goal strategy analysis research study summary details information
list number total share group member manager director board partner vendor supplier lunch dinner
coffee room floor building parking address phone mobile number weekend birthday party event
welcome congratulations reminder follow confirm send receive check discuss prepare finish start
continue support include provide create improve increase reduce complete expect happy sure sorry
great important available possible different current recent early late short long small large
open free clear easy quick simple ready likely whole better best right left local global
internal external public private online mobile daily weekly annual previous following remaining
already again always never often soon really actually probably certainly perhaps maybe between
during before within without under around across through against toward everyone someone
something anything nothing everything each every both either another such
""")

_CITIES = _split_words("""
London Paris Berlin Madrid Tokyo Sydney Toronto Chicago Boston Denver Seattle Austin Dublin
Amsterdam Singapore Mumbai Nairobi Lagos Oslo Lisbon Prague Vienna Warsaw Athens
""")
_TERMS = _split_words("""
Zimbra mailbox backup restore snapshot replica standby failover cluster storage volume index
search redo archive database migration upgrade outage incident ticket escalation roadmap
milestone sprint backlog retrospective kickoff onboarding offboarding compliance audit GDPR
HIPAA SLA KPI ROI OKR Q1 Q2 Q3 Q4 FY2024 FY2025 EMEA APAC LATAM Q&A R&D AT&T Acme Globex Initech
Umbrella Hooli Contoso Fabrikam Northwind Tailspin Wingtip Litware
""") + _CITIES

_OPENERS = ("I", "We", "The", "This", "Please", "Thanks for", "Just", "As", "Our", "Regarding the",
            "Following up on the", "Can you", "Let me know if", "Quick note on the", "FYI the")
# Sentence boundaries are vocabulary tokens too: a sentence-final word, the punctuation and the
# next sentence's capitalised opener ("today. The"), so joining words with spaces gives finished
# prose without a per-sentence loop or fix-up passes over the text.
_ENDERS = ("today", "soon", "now", "again", "there", "it", "them", "this", "that", "week",
           "tomorrow", "team", "project", "meeting", "report", "plan", "budget", "review",
           "customer", "release", "schedule", "details", "deadline", "office", "time", "work")
_BREAKS = (". The", ". We", ". I", ". Please", ". This", ". It", ". Our", ". They", ". Also",
           ". Thanks", "? Can", "? Could", "! Great", ", and", ", but", ", so", ", which", ":")
_INTL_WORDS = ("café", "naïve", "résumé", "déjà vu", "façade", "Zürich", "München", "Straße",
               "São Paulo", "Kraków", "Łódź", "jalapeño", "piñata", "Ångström", "Øresund",
               "Göteborg", "Málaga", "Besançon", "crème brûlée", "Grüße", "€", "coöperation",
               "Reykjavík", "fiancée")
_SUBJECT_INTL = _INTL_WORDS + ("🎉", "✅", "Привет", "日本", "Ελλάδα", "Überprüfung", "Réunion", "año")
_FIRST = ("Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Isabel", "Jack",
          "Karen", "Liam", "Maria", "Nathan", "Olivia", "Peter", "Quinn", "Rachel", "Samuel",
          "Tina", "Umar", "Victoria", "William", "Xavier", "Yasmin", "Zoe", "Ahmed", "Priya",
          "Wei", "Kenji", "José", "Zoë", "François", "Søren", "Łukasz", "Björn", "Mónica", "Chloé",
          "Dmitri", "Aoife")
_LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
         "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Lopez",
         "Lee", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott",
         "Nguyen", "Patel", "Kim", "Chen", "Müller", "García", "Lefèvre", "Kowalski", "Nørgaard",
         "Östberg", "Núñez", "O'Brien")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "corp.example",
            "acme.test", "globex.test", "initech.example")
_COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Hooli", "Contoso", "Fabrikam Inc",
              "Northwind Traders", "Tailspin Toys", "Wingtip Partners", "Litware")
_TITLES = ("Engineer", "Senior Engineer", "Product Manager", "Director of Sales", "Accountant",
           "Office Manager", "CTO", "Consultant", "Designer", "Support Lead", "Analyst")
_PREFIXES = ("Re: ", "RE: ", "Fwd: ", "FW: ", "[team] ", "[ops] ", "Re: [project] ", "Urgent: ")
_ATTACH = (  # content type, extension, leading magic bytes, relative weight
    ("application/pdf", "pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", 35),
    ("image/jpeg", "jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", 25),
    ("image/png", "png", b"\x89PNG\r\n\x1a\n", 10),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx",
     b"PK\x03\x04", 12),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx",
     b"PK\x03\x04", 10),
    ("application/zip", "zip", b"PK\x03\x04", 5),
    ("application/octet-stream", "bin", b"", 3),
)
_ATTACH_CUM = tuple(accumulate(a[3] for a in _ATTACH))


def _zipf_table() -> tuple[str, ...]:
    """65,536 slots, each vocabulary word in proportion to its weight: two random bytes pick one."""
    breaks = [w + b for w in _ENDERS for b in _BREAKS]
    words = [*_COMMON, *_TERMS, *breaks]
    weights = ([1.0 / (r + 8) for r in range(len(_COMMON))] + [0.004] * len(_TERMS)
               + [0.6 / len(breaks)] * len(breaks))
    total = sum(weights)
    counts = [max(1, round(w / total * 65536)) for w in weights]
    counts[0] += 65536 - sum(counts)
    return tuple(w for w, c in zip(words, counts) for _ in range(c))


_TABLE = _zipf_table()
_NAME_WORDS = tuple(w for w in _COMMON if len(w) > 3)

_WRAP = re.compile(r"(.{1,72})(?: +|$)")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_SPECIALS = frozenset('()<>[]:;@\\,."')  # display names with these are quoted
_EW_MAX = 75
_LINE_MAX = 78


@dataclass(frozen=True)
class MessageMeta:
    """What the generator put in a message, as `standby.store.mime.message_fields` finds it."""

    subject: str
    sender: str
    to: str
    cc: str
    recipients: str
    date_ms: int
    message_id: str
    body_text: str
    html_only: bool
    attachments: tuple[tuple[str, str, int], ...]  # (filename, content type, payload bytes)

    @property
    def has_attachment(self) -> bool:
        return bool(self.attachments)


def _encode_word(text: str, charset: str, b: bool) -> list[str]:
    """RFC 2047 encoded-words for `text`, split at character boundaries, each <= 75 chars."""
    head = f"=?{charset}?{'B' if b else 'Q'}?"
    room = _EW_MAX - len(head) - 2
    words: list[str] = []
    cur: list[str] = []
    used = 0
    for ch in text:
        raw = ch.encode(charset)
        if b:
            piece_len = len(raw)
            limit = room // 4 * 3
        else:
            piece_len = len(_q_encode(raw))
            limit = room
        if cur and used + piece_len > limit:
            words.append(_finish_word(head, cur, charset, b))
            cur, used = [], 0
        cur.append(ch)
        used += piece_len
    if cur:
        words.append(_finish_word(head, cur, charset, b))
    return words


def _finish_word(head: str, chars: list[str], charset: str, b: bool) -> str:
    raw = "".join(chars).encode(charset)
    if b:
        body = binascii.b2a_base64(raw, newline=False).decode("ascii")
    else:
        body = _q_encode(raw)
    return f"{head}{body}?="


def _q_encode(raw: bytes) -> str:
    return "".join(chr(c) if c in _Q_SAFE else ("_" if c == 32 else f"={c:02X}") for c in raw)


def _fold(line: str) -> str:
    """Fold a header line at spaces so lines stay under 78 chars; unfolding restores it exactly."""
    if len(line) <= _LINE_MAX:
        return line
    out: list[str] = []
    name, _, rest = line.partition(" ")
    toks = rest.split(" ")
    cur = f"{name} {toks[0]}"  # never fold between the header name and the first token
    for tok in toks[1:]:
        if len(cur) + 1 + len(tok) > _LINE_MAX:
            out.append(cur)
            cur = " " + tok
        else:
            cur = f"{cur} {tok}"
    out.append(cur)
    return "\r\n".join(out)


def _b64_lines(data: bytes) -> bytes:
    enc = binascii.b2a_base64(data, newline=False)
    return b"\r\n".join([enc[i:i + 76] for i in range(0, len(enc), 76)]) + b"\r\n"


def _wrap(text: str) -> list[str]:
    return _WRAP.findall(text)


class MessageFactory:
    """Realistic messages, contacts and names, drawn only from the `random.Random` given."""

    def __init__(self, rng: random.Random, addresses: Sequence[str] = ()) -> None:
        self._rng = rng
        self._addresses = tuple(addresses)

    # -- small pieces ------------------------------------------------------------------------
    def words(self, n: int) -> str:
        """`n` plain ASCII words (lower case, space separated), for folder and tag names."""
        return " ".join(self._rng.choices(_NAME_WORDS, k=n))

    def _name_for(self, address: str) -> str:
        local = address.split("@", 1)[0]
        parts = local.split(".")
        if len(parts) == 2 and all(p.isalpha() and p.isascii() for p in parts):
            return f"{parts[0].capitalize()} {parts[1].capitalize()}"
        h = zlib.crc32(address.encode("utf-8", "replace"))
        return f"{_FIRST[h % len(_FIRST)]} {_LAST[(h >> 8) % len(_LAST)]}"

    def _random_address(self) -> str:
        if self._addresses:
            return self._rng.choice(self._addresses)
        rng = self._rng
        first, last = _ascii(rng.choice(_FIRST)), _ascii(rng.choice(_LAST))
        return f"{first}.{last}@{rng.choice(_DOMAINS)}".lower()

    def _mailbox(self, address: str) -> tuple[str, str]:
        """(header text, decoded text) for one mailbox, sometimes with a display name."""
        if "<" in address and address.rstrip().endswith(">"):
            name, _, addr = address.rpartition("<")
            name, addr = name.strip().strip('"'), addr.rstrip().rstrip(">")
        elif self._rng.random() < 0.75:
            name, addr = self._name_for(address), address
        else:
            return address, address
        if not name:
            return addr, addr
        if name.isascii():
            if any(c in _SPECIALS for c in name):
                name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return f"{name} <{addr}>", f"{name} <{addr}>"
        ew = " ".join(_encode_word(name, self._charset_for(name), self._rng.random() < 0.4))
        return f"{ew} <{addr}>", f"{name} <{addr}>"

    def _display_name(self, mailbox: str) -> str:
        """The human name for a decoded mailbox: its display name, else one made up for it."""
        if "<" in mailbox:
            return mailbox.partition(" <")[0].strip('"')
        return self._name_for(mailbox)

    def _charset_for(self, text: str) -> str:
        rng = self._rng
        if rng.random() < 0.3:
            try:
                text.encode("iso-8859-1")
                return "iso-8859-1"
            except UnicodeEncodeError:
                pass
        return "UTF-8" if rng.random() < 0.5 else "utf-8"

    def _subject(self) -> tuple[str, str, bool]:
        """(header text, decoded subject, is a reply)."""
        rng = self._rng
        words = rng.choices(_NAME_WORDS, k=rng.randint(2, 9))
        words[0] = words[0].capitalize()
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(_TERMS))
        intl = rng.random() < 0.15
        if intl:
            for _ in range(rng.randint(1, 2)):
                words.insert(rng.randrange(len(words) + 1), rng.choice(_SUBJECT_INTL))
        prefix = rng.choice(_PREFIXES) if rng.random() < 0.35 else ""
        subject = prefix + " ".join(words)
        if not intl:
            return subject, subject, prefix.lower().startswith("re")
        toks = subject.split(" ")
        non = [i for i, t in enumerate(toks) if not t.isascii()]
        charset = self._charset_for(subject)
        if rng.random() < 0.3:  # whole subject as B-encoded words, as many clients do
            enc = " ".join(_encode_word(subject, charset, True))
        else:
            i, j = non[0], non[-1]
            mid = " ".join(_encode_word(" ".join(toks[i:j + 1]), charset, rng.random() < 0.3))
            enc = " ".join([*toks[:i], mid, *toks[j + 1:]])
        return enc, subject, prefix.lower().startswith("re")

    # -- bodies ------------------------------------------------------------------------------
    def _paragraphs(self, sizes: list[int], intl: bool) -> list[str]:
        """One paragraph of plausible prose per entry of `sizes` (word counts, each >= 2)."""
        rng = self._rng
        total = sum(sizes)
        idx = array("H", rng.randbytes(2 * total))
        if sys.byteorder == "big":
            idx.byteswap()
        ws = list(itemgetter(*idx)(_TABLE)) if total > 1 else [_TABLE[idx[0]]]
        if intl:
            for _ in range(max(1, total // 25)):
                ws[rng.randrange(total)] = rng.choice(_INTL_WORDS)
        openers = rng.choices(_OPENERS, k=len(sizes))
        endings = rng.choices("....?!", k=len(sizes))
        out: list[str] = []
        start = 0
        for n, opener, ending in zip(sizes, openers, endings):
            end = start + n
            last = ws[end - 1]
            if " " in last or last[-1] == ":":  # do not end on a sentence-boundary token
                ws[end - 1] = last.partition(" ")[0].rstrip(".,?!:")
            out.append(f"{opener} {' '.join(ws[start:end])}{ending}")
            start = end
        return out

    def _text(self, target: int, intl: bool, sender_name: str, to_name: str,
              quote: tuple[str, str] | None) -> tuple[list[str], list[list[str]]]:
        """Plain-text lines and the paragraphs (each a list of wrapped lines) for the HTML twin."""
        rng = self._rng
        first = to_name.split(" ")[0]
        greeting = rng.choice(
            (f"Hi {first},", f"Hello {first},", f"Dear {to_name},", f"{first},", ""))
        paras: list[list[str]] = [[greeting]] if greeting else []
        left = max(8, target // 6)
        sizes: list[int] = []
        while left > 0:
            n = min(left, rng.randint(25, 110))
            sizes.append(max(n, 6))
            left -= n
        paras.extend(_wrap(p) for p in self._paragraphs(sizes, intl))
        sign = [rng.choice(("Thanks,", "Best regards,", "Cheers,", "Kind regards,", "Best,")),
                sender_name]
        if rng.random() < 0.4:
            sign.append(f"{rng.choice(_TITLES)}, {rng.choice(_COMPANIES)}")
            sign.append(f"+1 555 {rng.randrange(1000):03d} {rng.randrange(10000):04d}")
        paras.append(sign)
        lines: list[str] = []
        for p in paras:
            lines.extend(p)
            lines.append("")
        if quote is not None:
            lines.append(f"On {quote[0]}, {quote[1]} wrote:")
            qtext = self._paragraphs([rng.randint(20, 80)], False)[0]
            lines.extend("> " + ln for ln in _wrap(qtext))
            paras.append([f"On {quote[0]}, {quote[1]} wrote:", *_wrap(qtext)])
        return lines, paras

    def _text_part(self, lines: list[str], kind: str = "plain") -> tuple[list[str], bytes]:
        rng = self._rng
        text = "\r\n".join(lines) + "\r\n"
        intl = not text.isascii()
        charset = self._charset_for(text) if intl else rng.choice(("us-ascii", "utf-8", "UTF-8"))
        data = text.encode(charset)
        r = rng.random()
        if intl:
            cte = "quoted-printable" if r < 0.55 else "8bit" if r < 0.85 else "base64"
        elif kind == "plain":
            cte = "7bit" if r < 0.8 else "quoted-printable"
        else:
            cte = "7bit" if r < 0.4 else "quoted-printable" if r < 0.9 else "base64"
        if cte == "quoted-printable":
            body = binascii.b2a_qp(data, istext=True)
        elif cte == "base64":
            body = _b64_lines(data)
        else:
            body = data
        extra = "; format=flowed" if kind == "plain" and rng.random() < 0.1 else ""
        return [f"Content-Type: text/{kind}; charset={charset}{extra}",
                f"Content-Transfer-Encoding: {cte}"], body

    def _html_lines(self, paras: list[list[str]]) -> list[str]:
        out = ["<html><head><style>p { margin: 0; } body { font-family: arial; }</style></head>",
               '<body><div style="font-family: arial, helvetica; font-size: 12pt; color: #000000">']
        for p in paras:
            joined = html.escape("\n".join(p), quote=False).replace("\n", "<br>\r\n")
            out.append(f"<p>{joined}</p>")
        out.append("</div></body></html>")
        return out

    def _boundary(self) -> str:
        rng = self._rng
        a, b, c = rng.randrange(1, 10**6), rng.getrandbits(40), rng.getrandbits(40)
        return f"----=_Part_{a}_{b:x}.{c:x}"

    def _multipart(self, sub: str, parts: list[tuple[list[str], bytes]]) -> tuple[list[str], bytes]:
        boundary = self._boundary()
        delim = b"--" + boundary.encode("ascii")
        chunks: list[bytes] = []
        if self._rng.random() < 0.3:
            chunks.append(b"This is a multi-part message in MIME format.\r\n")
        for headers, body in parts:
            head = "\r\n".join(_fold(h) for h in headers).encode("ascii")
            chunks.append(delim + b"\r\n" + head + b"\r\n\r\n" + body)
        chunks.append(delim + b"--\r\n")
        return [f'Content-Type: multipart/{sub}; boundary="{boundary}"'], b"\r\n".join(chunks)

    def _attachment(self) -> tuple[tuple[str, str, int], tuple[list[str], bytes]]:
        rng = self._rng
        ctype, ext, magic, _ = rng.choices(_ATTACH, cum_weights=_ATTACH_CUM)[0]
        size = min(300_000, int(10_000 * rng.paretovariate(0.8)))
        payload = magic + rng.randbytes(size - len(magic))
        name = "_".join(rng.choices(_NAME_WORDS, k=rng.randint(1, 3)))
        if rng.random() < 0.3:
            name += f"_{rng.randint(2019, 2025)}"
        fname = f"{name}.{ext}"
        headers = [f'Content-Type: {ctype}; name="{fname}"', "Content-Transfer-Encoding: base64",
                   f'Content-Disposition: attachment; filename="{fname}"']
        return (fname, ctype, size), (headers, _b64_lines(payload))

    # -- messages ----------------------------------------------------------------------------
    def message(self, *, sender: str, recipients: list[str], date_ms: int) -> bytes:
        """A complete RFC 5322 message (CRLF line endings) from `sender` to `recipients`."""
        return self.message_with_meta(sender=sender, recipients=recipients, date_ms=date_ms)[0]

    def message_with_meta(self, *, sender: str, recipients: list[str],
                          date_ms: int) -> tuple[bytes, MessageMeta]:
        """Like `message`, plus what was put in it (decoded headers, body text, attachments)."""
        rng = self._rng
        from_hdr, from_txt = self._mailbox(sender)
        to = [self._mailbox(r) for r in recipients]
        cc = [self._mailbox(self._random_address()) for _ in range(rng.randint(1, 3))] \
            if rng.random() < 0.2 else []
        subj_hdr, subject, reply = self._subject()
        seconds = date_ms // 1000
        domain = sender.rpartition("@")[2].rstrip(">") or "localhost"
        message_id = f"<{rng.getrandbits(64):016x}.{rng.getrandbits(32):08x}@{domain}>"
        headers = [f"Date: {formatdate(seconds, usegmt=True)}", _fold(f"From: {from_hdr}"),
                   _fold("To: " + ", ".join(h for h, _ in to))]
        if cc:
            headers.append(_fold("Cc: " + ", ".join(h for h, _ in cc)))
        headers += [_fold(f"Subject: {subj_hdr}"), f"Message-ID: {message_id}"]
        if reply:
            parent = f"<{rng.getrandbits(64):016x}@{domain}>"
            headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
        headers.append("MIME-Version: 1.0")
        if rng.random() < 0.5:
            headers.append(rng.choice(("X-Mailer: Zimbra 8.8.15_GA_4481 (ZimbraWebClient - FF120)",
                                       "X-Mailer: Microsoft Outlook 16.0",
                                       "User-Agent: Mozilla Thunderbird 115.5.0")))

        intl = rng.random() < 0.2
        target = int(min(19_000, max(700, rng.lognormvariate(8.2, 0.75))))
        sender_name = self._display_name(from_txt)
        to_name = self._display_name(to[0][1]) if to else "all"
        quote = None
        if reply:
            quote = (formatdate(seconds - rng.randrange(600, 86400 * 3), usegmt=True), to_name)
        lines, paras = self._text(target, intl, sender_name, to_name, quote)
        html_only = False
        with_attachments = rng.random() < 0.15
        style = rng.random()
        if style < (0.5 if with_attachments else 0.4):
            html_part = self._text_part(self._html_lines(paras), "html")
            body = self._multipart("alternative", [self._text_part(lines), html_part])
        elif style < 0.48 and not with_attachments:
            html_only = True
            body = self._text_part(self._html_lines(paras), "html")
        else:
            body = self._text_part(lines)
        attachments: list[tuple[str, str, int]] = []
        if with_attachments:
            parts = [body]
            for _ in range(2 if rng.random() < 0.3 else 1):
                info, part = self._attachment()
                attachments.append(info)
                parts.append(part)
            body = self._multipart("mixed", parts)
        headers += [_fold(h) for h in body[0]]
        raw = "\r\n".join(headers).encode("ascii") + b"\r\n\r\n" + body[1]
        body_text = "\n\n".join("\n".join(p) for p in paras) if html_only else "\n".join(lines)
        meta = MessageMeta(
            subject=subject, sender=from_txt, to=", ".join(t for _, t in to),
            cc=", ".join(t for _, t in cc), recipients=", ".join(t for _, t in to + cc),
            date_ms=seconds * 1000, message_id=message_id, body_text=body_text,
            html_only=html_only, attachments=tuple(attachments))
        return raw, meta

    # -- contacts ----------------------------------------------------------------------------
    def contact_vcard(self, *, full_name: str | None = None) -> tuple[dict[str, str], bytes]:
        """A random contact as Zimbra-style fields, and its vCard 3.0 serialisation (CRLF)."""
        rng = self._rng
        if full_name:
            first, _, last = full_name.strip().rpartition(" ")
            if not first:
                first, last = last, ""
        else:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
        name = f"{first} {last}".strip()
        local = ".".join(p for p in (_ascii(first), _ascii(last)) if p)
        local = local or f"user{rng.randrange(10**6)}"
        company = rng.choice(_COMPANIES)
        fields = {
            "firstName": first, "lastName": last, "fullName": name,
            "email": f"{local}@{rng.choice(_DOMAINS)}".lower().replace("'", ""),
            "company": company, "jobTitle": rng.choice(_TITLES),
            "workPhone": f"+1 555 {rng.randrange(1000):03d} {rng.randrange(10000):04d}",
            "mobilePhone": f"+1 555 {rng.randrange(1000):03d} {rng.randrange(10000):04d}",
            "workStreet": f"{rng.randint(1, 999)} {rng.choice(_LAST)} Street",
            "workCity": rng.choice(_CITIES), "workPostalCode": f"{rng.randrange(100000):05d}",
        }
        if rng.random() < 0.3:
            fields["notes"] = self._paragraphs([rng.randint(5, 20)], False)[0]
        e = _vcard_escape
        lines = ["BEGIN:VCARD", "VERSION:3.0", f"N:{e(last)};{e(first)};;;", f"FN:{e(name)}",
                 f"ORG:{e(company)}", f"TITLE:{e(fields['jobTitle'])}",
                 f"EMAIL;TYPE=INTERNET:{fields['email']}",
                 f"TEL;TYPE=WORK:{fields['workPhone']}", f"TEL;TYPE=CELL:{fields['mobilePhone']}",
                 (f"ADR;TYPE=WORK:;;{e(fields['workStreet'])};{e(fields['workCity'])};;"
                  f"{fields['workPostalCode']};")]
        if "notes" in fields:
            lines.append(f"NOTE:{e(fields['notes'])}")
        lines += [f"UID:{rng.getrandbits(128):032x}", "END:VCARD"]
        return fields, ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _ascii(s: str) -> str:
    """Best-effort ASCII transliteration for address local parts."""
    s = s.replace("Ł", "L").replace("ł", "l").replace("ø", "o").replace("Ø", "O").replace("ß", "ss")
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")
    return s.replace("'", "")


def _vcard_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
